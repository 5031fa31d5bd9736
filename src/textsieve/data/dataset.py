"""Data-Juicer style datasets, one sample a row: the row type, the entry
points every executor uses, and the sample's video paths.

Each row is yielded with its 0-based index, which identifies the sample in
every output and in the resume journal. A row that is not a JSON object is
yielded with an error instead of stopping the run. The formats and the
splitting live in :mod:`textsieve.data.sources`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError, ErrorKind, RunStopped, VideoError
from ..redact import mask_url
from .row import Row
from .sources import count, count_selected, is_url, join, resolve, rows

# What a file that is not what its name says raises while it is read: a cut or
# corrupt Parquet file (pyarrow's ArrowInvalid is a ValueError), a .gz that is
# not gzip or is cut short (BadGzipFile is an OSError, a cut stream EOFError),
# a store that went away (OSError and the backends' own exceptions).
UNREADABLE = (OSError, EOFError, ValueError)


def _unreadable(path: str, exc: BaseException) -> str:
    return (f"dataset {mask_url(str(path))} cannot be read: {type(exc).__name__}: {exc} "
            "(a truncated or corrupt file, or a store that does not answer?)")


__all__ = ["Row", "check_dataset", "count_rows", "dataset_base", "read_rows", "video_paths", "with_absolute_videos"]


def check_dataset(path: str) -> None:
    """Refuse, before any work, a dataset that is missing, unreadable or of
    an unknown format."""

    try:
        resolve(str(path))
    except UNREADABLE as exc:
        raise ConfigError(_unreadable(path, exc)) from None


def read_rows(path: str) -> Iterator[Row]:
    """Every row of the dataset, in order, numbered (see data/sources.py)."""

    try:
        yield from rows(resolve(str(path)))
    except UNREADABLE as exc:
        # counted in full before the run, so this is a file that changed or a store that went away
        raise RunStopped(f"{_unreadable(path, exc)}; the run stopped there: fix it, then run the same command "
                         "again and it resumes") from None


def count_rows(path: str) -> int:
    """How many samples the dataset holds (one pass over JSON lines; Parquet
    from its metadata); of a weighted mixture, the rows drawn."""

    total = first = 0
    try:
        for split in resolve(str(path)).splits:
            n = count(split)
            total += count_selected(split, first, n)
            first += n
    except UNREADABLE as exc:
        raise ConfigError(_unreadable(path, exc)) from None
    return total


def dataset_base(path: str) -> str:
    """The folder (or URL prefix) relative video paths are resolved against."""

    return resolve(str(path)).base


def with_absolute_videos(sample: dict, video_key: str, base_dir: str | Path) -> dict:
    """The sample as every output writes it: each relative video path made
    absolute against the dataset's folder (or URL prefix), so that a kept,
    dropped or error file resolves its videos wherever it lies and whoever
    reads it. Data-Juicer's loader does the same (``rel2abs``), against the
    folder of the file it is given, which for textsieve's outputs is the export
    folder, not the dataset's. Absolute paths and URLs are written as given.

    A base whose URL holds a secret (userinfo, a signed query) is not written
    out: those paths stay as the row had them (README, "Relative video paths")."""

    base = str(base_dir)
    videos = sample.get(video_key)
    if not isinstance(videos, list) or mask_url(base) != base:
        return sample
    absolute = [join(base, v) if isinstance(v, str) and v and not is_url(v) and not os.path.isabs(v) else v
                for v in videos]
    if absolute == videos:
        return sample
    return {**sample, video_key: absolute}


def video_paths(sample: dict, video_key: str, base_dir: str | Path) -> list[str]:
    """The sample's videos as absolute paths or URLs, in order; relative
    paths are resolved against the dataset file's folder (or URL prefix). A
    malformed field fails the sample with ``bad_sample``."""

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
