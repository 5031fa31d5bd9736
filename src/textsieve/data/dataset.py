"""Reading Data-Juicer style datasets: JSON lines or Parquet, one sample a row.

Each row is yielded with its 0-based index, which identifies the sample in
every output and in the resume journal. A row that is not a JSON object is
yielded with an error instead of stopping the run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, ErrorKind, VideoError


@dataclass
class Row:
    index: int
    sample: Any  # the parsed row; a dict unless ``error`` is set
    error: str | None = None


SUFFIXES = (".jsonl", ".json", ".parquet")


def check_dataset(path: str | Path) -> None:
    """Refuse, before any work, a dataset that is missing, unreadable or of
    an unknown format."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"dataset {path} does not exist (dataset_path or --dataset)")
    if not path.is_file():
        raise ConfigError(f"dataset {path} is not a file: give a .jsonl, .json or .parquet file")
    if path.suffix not in SUFFIXES:
        raise ConfigError(f"dataset {path}: use a .jsonl, .json (JSON lines) or .parquet file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise ConfigError(f"dataset {path} cannot be read: {exc.strerror}") from None


def read_rows(path: str | Path) -> Iterator[Row]:
    path = Path(path)
    check_dataset(path)
    if path.suffix == ".parquet":
        yield from _parquet_rows(path)
    else:
        yield from _json_rows(path)


def _json_rows(path: Path) -> Iterator[Row]:
    with open(path, encoding="utf-8") as f:
        head = f.read(1)
        f.seek(0)
        if head == "[":  # a JSON array of samples
            for i, item in enumerate(json.load(f)):
                yield _row(i, item)
            return
        index = 0
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Row(index, line.rstrip("\n"), f"line {line_no} is not valid JSON: {exc}")
            else:
                yield _row(index, item)
            index += 1


def _row(index: int, item: Any) -> Row:
    if not isinstance(item, dict):
        return Row(index, item, f"sample is a {type(item).__name__}, not a JSON object")
    return Row(index, item)


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for item in batch.to_pylist():
            yield Row(index, item)
            index += 1


def count_rows(path: str | Path) -> int | None:
    """Row count for progress and ETA (cheap for Parquet and JSON lines)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as f:
        if f.read(1) == b"[":
            return None
        f.seek(0)
        return sum(1 for line in f if line.strip())


def video_paths(sample: dict, video_key: str, base_dir: str | Path) -> list[str]:
    """The sample's videos as absolute paths, in order; relative paths are
    resolved against the dataset file's folder. A malformed field fails the
    sample with ``bad_sample``."""
    if video_key not in sample or sample[video_key] is None:
        return []
    videos = sample[video_key]
    if not isinstance(videos, list):
        raise VideoError(
            ErrorKind.BAD_SAMPLE,
            f"field {video_key!r} must be a list of paths, got {type(videos).__name__} {str(videos)[:80]!r}",
        )
    out = []
    for v in videos:
        if not isinstance(v, str) or not v:
            raise VideoError(ErrorKind.BAD_SAMPLE, f"field {video_key!r} holds {v!r}, not a path")
        expanded = os.path.expanduser(v)
        out.append(expanded if os.path.isabs(expanded) else os.path.normpath(os.path.join(base_dir, expanded)))
    return out
