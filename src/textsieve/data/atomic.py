"""The one way textsieve replaces a file it owns: outputs, journal, manifest,
summary, report, profile cache.

The new content goes to a temporary file beside the target, is synced to
disk, and is renamed over the target, and the rename itself is synced: a
reader or a crash at any moment sees the old file or the new one, never
half of one. If the writing fails, the temporary file goes and the target is
left as it was.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replacing(path: Path, tmp: Path | None = None) -> Iterator[Path]:
    """Yield the temporary path to write (``tmp``, or ``.<name>.tmp`` beside
    ``path``); when the block ends, it replaces ``path``."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    _sync_folder(path.parent)


def write_atomic(path: Path, data: str | bytes, tmp: Path | None = None) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8)."""
    with replacing(path, tmp) as t:
        t.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def _sync_folder(folder: Path) -> None:
    # the rename is durable only once the folder's entry is on disk
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform or filesystem without folder handles: the rename stands as it is
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
