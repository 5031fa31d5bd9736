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
from .atomic import replacing, write_atomic
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


def _portable(settings: dict) -> dict:
    """Settings as this version records them: journals written before the
    kept file was named within its folder hold its absolute path."""
    kept = settings.get("kept_file")
    return {**settings, "kept_file": os.path.basename(kept)} if isinstance(kept, str) and os.path.isabs(kept) else settings


def check_same_run(folder: Path, header: dict, settings: dict[str, Any]) -> None:
    """Refuse to resume a folder whose journal or manifest ``header`` holds
    a run with other settings, naming what changed."""
    if header.get("fingerprint") == fingerprint(settings):
        return
    recorded = _portable(header.get("settings", {}))
    if fingerprint(recorded) == fingerprint(settings):
        return
    old, new = _flat(recorded), _flat(settings)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    raise ConfigError(f"{folder} holds a run with other settings (changed: {', '.join(changed) or 'unknown'}); "
                      "pass --restart to discard it and start over, or choose another export folder")


@dataclass
class Resumed:
    done: set[int] = field(default_factory=set)
    offsets: dict[str, int] = field(default_factory=dict)
    complete: bool = False  # the run finished and its final files were written
    retried: set[int] = field(default_factory=set)  # taken back by --retry-errors (kept across a resume)


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
            raise ConfigError(f"{self.path} is not a textsieve journal: move it away, or choose another export folder") from None
        check_same_run(self.path.parent, header, self.settings)
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
                resumed.retried.update(entry.get("retried", ()))
            end += len(line) + 1
        with open(self.path, "r+b") as f:  # drop a torn tail before appending
            f.truncate(end)
        return resumed

    def rewrite(self, done: set[int], offsets: dict[str, int], retried: set[int] = frozenset()) -> None:
        """Replace the journal by one commit of ``done`` at ``offsets`` (the
        run is then unfinished): for ``--retry-errors``, which takes samples
        back out of the done set (``retried``, recorded so that the summary
        still counts them after a stop and a resume), and for a resume whose
        part files lost records."""
        self._file.close()
        with replacing(self.path, self.path.with_name(self.path.name + ".rewrite")) as tmp, \
                open(tmp, "w", encoding="utf-8") as f:
            f.write(dumps({"fingerprint": self.key, "settings": self.settings}, ascii=True) + "\n")
            entry = {"done": sorted(done), "offsets": offsets, **({"retried": sorted(retried)} if retried else {})}
            f.write(json.dumps(entry) + "\n")
        self.resumed = Resumed(set(done), dict(offsets), complete=False, retried=set(retried))
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
    write_atomic(path, "\n".join(lines), path.with_name(path.name + ".rewrite"))


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
