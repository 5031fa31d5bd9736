"""Where samples come from: a dataset path, cut into splits that can be
counted and read independently, on this machine or by Ray tasks on a cluster.

A dataset path is a JSON-lines file (``.jsonl``, ``.json``, either gzipped),
a JSON array, a Parquet file, a glob of such files (``data/*.parquet``,
``s3://bucket/shards/*.jsonl.gz``), a folder of them, a HuggingFace dataset
saved with ``save_to_disk`` (a folder of ``.arrow`` files), or a folder of
videos (one sample per video, ``{"videos": [path]}``). Local paths and any
fsspec URL (``s3://``, ``gs://``, ``http(s)://``) work the same way.

A sample's identity is its position in the dataset: the resume journal, the
output order and every record name it by that index. Ray Data's readers
cannot number rows, so the dataset is cut into splits here: byte ranges of
uncompressed JSON lines (64 MiB), row groups of Parquet files, whole
compressed or Arrow files, chunks of a video folder. Counting a split's rows
is cheap and parallel; a split's first index is the count of the splits
before it; reading a split yields its rows with their indices. Nothing held
is proportional to the dataset, only to the number of splits.

Each format's reader (how its files are cut, counted and read) is in
:mod:`textsieve.data.formats`, looked up by a split's kind.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError
# Split, filesystem and is_url are imported from here by the rest of the package too
from .formats import VIDEO_SUFFIXES, Split, VideoFolder, filesystem, format_of, is_url, reader
from .row import Row

SPLIT_BYTES = 64 << 20
DATA_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet", ".arrow")


def join(base: str, path: str) -> str:
    """``path`` resolved against ``base`` (a folder or URL prefix), as
    relative video paths are resolved against the dataset's folder."""
    if is_url(path) or os.path.isabs(os.path.expanduser(path)):
        return path if is_url(path) else os.path.expanduser(path)
    if is_url(base):
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, path))}"
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


@dataclass(frozen=True)
class Dataset:
    """A resolved dataset path: its splits and the folder relative video paths start from."""

    path: str
    base: str
    splits: tuple[Split, ...]


def _kind(name: str) -> str | None:
    found = format_of(name)
    return found.kind if found else None


def _listing(path: str) -> tuple[list[str], bool]:
    """The files a dataset path names (sorted) and whether it names a folder."""
    if is_url(path):
        fs, inner = filesystem(path)
        protocol = path.split("://", 1)[0]
        # an HTTP URL's "?" starts its query (a presigned URL's signature), not a glob
        pattern = inner.split("?", 1)[0] if protocol in ("http", "https") else inner

        def url(p: str) -> str:  # HTTP paths are whole URLs already
            return p if is_url(p) else f"{protocol}://{p}"

        if any(c in pattern for c in "*?["):
            return [url(p) for p in sorted(fs.glob(inner))], False
        if fs.isdir(inner):
            return [url(p) for p in sorted(fs.find(inner))], True
        if fs.exists(inner):
            return [path], False
        return [], False
    expanded = os.path.expanduser(path)
    if any(c in expanded for c in "*?["):
        import glob

        return sorted(p for p in glob.glob(expanded, recursive=True) if os.path.isfile(p)), False
    if os.path.isdir(expanded):
        return sorted(str(p) for p in Path(expanded).rglob("*") if p.is_file()), True
    if os.path.isfile(expanded):
        return [expanded], False
    return [], False


def _weighted(tokens: list[str]) -> bool:
    try:
        float(tokens[0])
        return True
    except ValueError:
        return False


def mixture(path: str) -> list[tuple[float, str]]:
    """Data-Juicer's dataset_path forms: one path, several (``a.jsonl
    b.jsonl``), or weighted (``0.5 a.jsonl 0.3 b.jsonl``)."""
    if os.path.exists(os.path.expanduser(path)) or not path.split():
        return [(1.0, path)]
    tokens = path.split()
    if not _weighted(tokens):
        return [(1.0, token) for token in tokens]
    if len(tokens) % 2:
        raise ConfigError(f"dataset_path {path!r}: a weighted list pairs each path with its weight (0.5 a.jsonl 0.3 b.jsonl)")
    pairs = []
    for weight, part in zip(tokens[::2], tokens[1::2]):
        try:
            w = float(weight)
        except ValueError:
            raise ConfigError(f"dataset_path {path!r}: {weight!r} is not a weight") from None
        if not 0 < w <= 1:
            raise ConfigError(f"dataset_path {path!r}: weights take a share of each dataset, in (0, 1]; got {w}")
        pairs.append((w, part))
    return pairs


def absolute(path: str) -> str:
    """A dataset path with each local part made absolute (relative parts are
    relative to the working directory, as in Data-Juicer); URLs as given.
    Mixtures keep their form."""
    def one(part: str) -> str:
        return part if is_url(part) else os.path.abspath(os.path.expanduser(part))

    parts = mixture(path)
    if len(parts) == 1 and parts[0][1] == path:
        return one(path)
    if _weighted(path.split()):
        return " ".join(f"{weight:g} {one(part)}" for weight, part in parts)
    return " ".join(one(part) for _, part in parts)


def selected(split: Split, index: int) -> bool:
    """Whether a row of a weighted dataset is drawn: a seeded draw per row,
    so that any process decides alike. About ``weight`` of the rows (Data-
    Juicer draws exactly int(weight x rows) with its own shuffle: other rows)."""
    if split.weight >= 1.0:
        return True
    draw = int.from_bytes(hashlib.blake2b(f"{split.part}:{index}".encode(), digest_size=8).digest(), "big")
    return draw / 2**64 < split.weight


def resolve(path: str, split_bytes: int = SPLIT_BYTES) -> Dataset:
    """Cut a dataset path (or a mixture of them) into splits; a ConfigError
    if it names nothing readable."""
    parts = mixture(path)
    if len(parts) > 1 or parts[0][0] < 1.0:
        resolved = [(w, _resolve_one(p, split_bytes)) for w, p in parts]
        splits = tuple(replace(split, weight=w, part=n) for n, (w, d) in enumerate(resolved) for split in d.splits)
        return Dataset(path, resolved[0][1].base, splits)
    return _resolve_one(path, split_bytes)


def _resolve_one(path: str, split_bytes: int) -> Dataset:
    files, folder = _listing(path)
    if not files:
        raise ConfigError(f"dataset {path} does not exist or matches no file (dataset_path or --dataset)")
    data = [f for f in files if _kind(f)]
    if folder and any(_kind(f) == "arrow" for f in data):
        # a HuggingFace save_to_disk folder: its .json files describe the Arrow ones
        data = [f for f in data if _kind(f) == "arrow"]
    if folder and not data:
        videos = [f for f in files if f.lower().endswith(VIDEO_SUFFIXES)]
        if not videos:
            raise ConfigError(f"dataset {path} is a folder with neither dataset files ({', '.join(DATA_SUFFIXES)}) "
                              f"nor videos ({', '.join(VIDEO_SUFFIXES)})")
        return Dataset(path, path, tuple(VideoFolder.folder_splits(path, videos)))
    if not data:
        raise ConfigError(f"dataset {path}: use JSON lines (.jsonl, .json, optionally .gz), Parquet (.parquet), "
                          "a WebDataset archive (.tar, .zip), "
                          "a HuggingFace dataset folder (.arrow), or a folder of videos")
    splits: list[Split] = []
    for file in data:
        kind = _kind(file)
        assert kind is not None  # data holds the files that have one
        splits += reader(kind).splits(file, split_bytes)
    base = path if folder else _parent(data[0])
    return Dataset(path, base, tuple(splits))


def _parent(path: str) -> str:
    if is_url(path):
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest)}"
    return os.path.dirname(os.path.abspath(path))


# ---- counting and reading ---------------------------------------------------------

def count(split: Split) -> int:
    """How many rows (samples) the split holds."""
    return reader(split.kind).count(split)


def read(split: Split, first_index: int) -> Iterator[Row]:
    """The split's rows, numbered from ``first_index`` (of a weighted
    dataset, only the rows drawn). A row that is not a JSON object, or that
    no output could hold (see :func:`row_defect`), comes with an error
    instead of stopping the run."""
    for row in reader(split.kind).rows(split, first_index):
        if selected(split, row.index):
            yield row


def count_selected(split: Split, first_index: int, rows_in_split: int) -> int:
    """How many of the split's rows a weighted dataset draws (all of a plain one)."""
    if split.weight >= 1.0:
        return rows_in_split
    return sum(selected(split, i) for i in range(first_index, first_index + rows_in_split))


def rows(dataset: Dataset) -> Iterator[Row]:
    """Every row in order, numbered: the sequential reader (serial, local).
    Rows are numbered over all rows of a mixture, drawn or not, so that a
    row's number never depends on the draw."""
    first = 0
    for split in dataset.splits:
        last = first - 1
        for row in reader(split.kind).rows(split, first):
            last = row.index
            if selected(split, row.index):
                yield row
        first = last + 1
