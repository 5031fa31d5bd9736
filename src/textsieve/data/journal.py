"""The resume journal: which samples are done, and how long each output part
file was at that moment.

``journal.jsonl`` starts with a header (the run's fingerprint: the settings
that change answers) and gets one line per commit: the sample indices
completed since the last commit and the part files' sizes after writing
them. Re-running the same command reads it back, truncates the part files to
the last complete commit and skips the completed samples; a run with other
settings is refused unless the user asks to start over.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .strict_json import dumps  # strict JSON: a NaN in the settings is written as null

JOURNAL = "journal.jsonl"


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flat(settings: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclass
class Resumed:
    done: set[int] = field(default_factory=set)
    offsets: dict[str, int] = field(default_factory=dict)
    complete: bool = False  # the run finished and its final files were written


class Journal:
    def __init__(self, export_dir: Path, settings: dict[str, Any], restart: bool = False):
        self.path = Path(export_dir) / JOURNAL
        self.settings = settings
        self.key = fingerprint(settings)
        self.resumed = Resumed()
        if self.path.exists() and not restart:
            self.resumed = self._read()
        else:
            self._start()
        self._file = open(self.path, "a", encoding="utf-8")

    def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(dumps({"fingerprint": self.key, "settings": self.settings}, ascii=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _read(self) -> Resumed:
        resumed = Resumed()
        lines = self.path.read_bytes().split(b"\n")
        try:
            header = json.loads(lines[0])
        except ValueError:
            raise ConfigError(f"{self.path} is not a textsieve journal; remove it or pass --restart") from None
        if header.get("fingerprint") != self.key:
            old, new = _flat(header.get("settings", {})), _flat(self.settings)
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(
                f"{self.path.parent} holds a run with other settings (changed: {', '.join(changed) or 'unknown'}); "
                "pass --restart to discard it and start over, or choose another export folder"
            )
        end = len(lines[0]) + 1
        # lines[-1] follows the last newline: empty, or a commit torn by a crash
        for line in lines[1:-1]:
            try:
                entry = json.loads(line)
            except ValueError:
                break
            if entry.get("complete"):
                resumed.complete = True
            else:
                resumed.done.update(entry["done"])
                resumed.offsets = entry["offsets"]
            end += len(line) + 1
        with open(self.path, "r+b") as f:  # drop a torn tail before appending
            f.truncate(end)
        return resumed

    def rewrite(self, done: set[int], offsets: dict[str, int]) -> None:
        """Replace the journal by one commit of ``done`` at ``offsets`` (the
        run is then unfinished): for ``--retry-errors``, which takes samples
        back out of the done set."""
        self._file.close()
        tmp = self.path.with_name(self.path.name + ".rewrite")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(dumps({"fingerprint": self.key, "settings": self.settings}, ascii=True) + "\n")
            f.write(json.dumps({"done": sorted(done), "offsets": offsets}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.resumed = Resumed(set(done), dict(offsets), complete=False)
        self._file = open(self.path, "a", encoding="utf-8")

    def commit(self, done: list[int], offsets: dict[str, int]) -> None:
        self._file.write(json.dumps({"done": done, "offsets": offsets}) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def mark_complete(self) -> None:
        self._file.write(json.dumps({"complete": True}) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_settings(export_dir: Path) -> dict[str, Any]:
    """The settings a folder's run was started with."""
    path = Path(export_dir) / JOURNAL
    with open(path, encoding="utf-8") as f:
        return json.loads(f.readline())["settings"]


def replace_settings(export_dir: Path, settings: dict[str, Any]) -> None:
    """Give a folder's run new settings (``textsieve decide`` changed its
    thresholds): a later ``run`` then compares against what the outputs hold."""
    path = Path(export_dir) / JOURNAL
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[0] = dumps({"fingerprint": fingerprint(settings), "settings": settings}, ascii=True)
    tmp = path.with_name(path.name + ".rewrite")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)


def index_ranges(indices: set[int]) -> list[tuple[int, int]]:
    """Sorted ``(start, stop)`` ranges covering ``indices``: a done set kept
    or shipped small (it is mostly contiguous)."""
    out: list[tuple[int, int]] = []
    for index in sorted(indices):
        if out and out[-1][1] == index:
            out[-1] = (out[-1][0], index + 1)
        else:
            out.append((index, index + 1))
    return out
