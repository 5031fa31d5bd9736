"""The export folder: kept / dropped / errors / stats as JSON lines, and
summary.json. Lines are appended to ``*.part`` files and flushed per batch;
the final names appear only when the run completes (atomic renames)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from ..filter import with_stats
from ..outcome import SampleOutcome

PART = ".part"


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_fallback)


def _fallback(obj: Any) -> Any:
    # Parquet rows may hold numpy scalars, bytes or dates.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    return str(obj)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + PART)
    tmp.write_text(json.dumps(obj, indent=2, default=_fallback) + "\n")
    os.replace(tmp, path)


class ExportWriter:
    def __init__(self, export_dir: Path, kept_file: Path):
        self.dir = Path(export_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.paths = {
            "kept": Path(kept_file),
            "dropped": self.dir / "dropped.jsonl",
            "errors": self.dir / "errors.jsonl",
            "stats": self.dir / "stats.jsonl",
        }
        self._files: dict[str, IO[str]] = {
            name: open(path.with_name(path.name + PART), "w", encoding="utf-8") for name, path in self.paths.items()
        }

    def write(self, outcome: SampleOutcome) -> None:
        if outcome.status == "error":
            self._files["errors"].write(dumps(outcome.error_record()) + "\n")
            return
        target = "kept" if outcome.status == "kept" else "dropped"
        self._files[target].write(dumps(with_stats(outcome.sample, outcome.ratios)) + "\n")
        self._files["stats"].write(dumps(outcome.stats_record()) + "\n")

    def flush(self) -> None:
        for f in self._files.values():
            f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def finalize(self, summary: dict) -> None:
        """Close, move every part file to its final name, then write the summary."""
        self.close()
        for path in self.paths.values():
            os.replace(path.with_name(path.name + PART), path)
        write_json_atomic(self.dir / "summary.json", summary)
