"""Data-Juicer style datasets, one sample a row: the row type, the entry
points every executor uses, and the sample's video paths.

Each row is yielded with its 0-based index, which identifies the sample in
every output and in the resume journal. A row that is not a JSON object is
yielded with an error instead of stopping the run. The formats and the
splitting live in :mod:`textsieve.data.sources`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, ErrorKind, VideoError


@dataclass
class Row:
    index: int
    sample: Any  # the parsed row; a dict unless ``error`` is set
    error: str | None = None


def check_dataset(path: str) -> None:
    """Refuse, before any work, a dataset that is missing, unreadable or of
    an unknown format."""
    from .sources import resolve

    try:
        resolve(str(path))
    except OSError as exc:
        raise ConfigError(f"dataset {path} cannot be read: {exc}") from None


def read_rows(path: str) -> Iterator[Row]:
    """Every row of the dataset, in order, numbered (see data/sources.py)."""
    from .sources import resolve, rows

    yield from rows(resolve(str(path)))


def count_rows(path: str) -> int:
    """How many samples the dataset holds (one pass over JSON lines; Parquet
    from its metadata); of a weighted mixture, the rows drawn."""
    from .sources import count, count_selected, resolve

    total = first = 0
    for split in resolve(str(path)).splits:
        rows = count(split)
        total += count_selected(split, first, rows)
        first += rows
    return total


def dataset_base(path: str) -> str:
    """The folder (or URL prefix) relative video paths are resolved against."""
    from .sources import resolve

    return resolve(str(path)).base


def video_paths(sample: dict, video_key: str, base_dir: str | Path) -> list[str]:
    """The sample's videos as absolute paths or URLs, in order; relative
    paths are resolved against the dataset file's folder (or URL prefix). A
    malformed field fails the sample with ``bad_sample``."""
    from .sources import join

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
        if "\x00" in v:  # no file system takes one; open() would raise past the decoder's error handling
            raise VideoError(ErrorKind.BAD_SAMPLE, f"field {video_key!r} holds {v[:80]!r}, a path with a NUL character")
        out.append(join(str(base_dir), v))
    return out
