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
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import posixpath
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Iterator

from ..errors import ConfigError
from .row import Row
from .strict_json import dumps, finite

SPLIT_BYTES = 64 << 20
VIDEOS_PER_SPLIT = 10_000
DATA_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet", ".arrow")
# WebDataset-style archives, read in place (uncompressed tar; zip, its members stored or deflated)
ARCHIVE_SUFFIXES = (".tar", ".zip")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif", ".m4v", ".ts", ".flv", ".wmv", ".mpg", ".mpeg")


def is_url(path: str) -> bool:
    return "://" in path


def join(base: str, path: str) -> str:
    """``path`` resolved against ``base`` (a folder or URL prefix), as
    relative video paths are resolved against the dataset's folder."""
    if is_url(path) or os.path.isabs(os.path.expanduser(path)):
        return path if is_url(path) else os.path.expanduser(path)
    if is_url(base):
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, path))}"
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def filesystem(path: str):
    """The fsspec file system of a URL (and the path within it)."""
    import fsspec

    return fsspec.core.url_to_fs(path)


def open_binary(path: str) -> IO[bytes]:
    """A local file or a URL, for reading (ranged reads where the store allows)."""
    if is_url(path):
        fs, inner = filesystem(path)
        return fs.open(inner, "rb")
    return open(path, "rb")


@dataclass(frozen=True)
class Split:
    """A piece of the dataset that can be counted and read alone."""

    path: str  # the file (or, for a video folder, the folder)
    kind: str  # jsonl | jsonl.gz | json-array | parquet | arrow | videos
    start: int = 0  # byte offset (jsonl), row group (parquet), first video (videos)
    stop: int = 0  # end byte (jsonl), row group + 1 (parquet), last video + 1 (videos)
    videos: tuple[str, ...] = ()  # the split's video files (videos)
    weight: float = 1.0  # of a weighted dataset_path: the share of its rows taken
    part: int = 0  # which dataset of a mixture it belongs to (seeds the draw)


@dataclass(frozen=True)
class Dataset:
    """A resolved dataset path: its splits and the folder relative video paths start from."""

    path: str
    base: str
    splits: tuple[Split, ...]


def _kind(name: str) -> str | None:
    # of a URL, the path decides, not a query (a presigned URL's signature)
    lower = (name.split("?", 1)[0] if is_url(name) else name).lower()
    if lower.endswith((".jsonl.gz", ".json.gz")):
        return "jsonl.gz"
    if lower.endswith((".jsonl", ".json")):
        return "jsonl"
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith(".arrow"):
        return "arrow"
    if lower.endswith(ARCHIVE_SUFFIXES):
        return lower.rsplit(".", 1)[1]
    return None


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


def _size(path: str) -> int:
    if is_url(path):
        fs, inner = filesystem(path)
        return int(fs.size(inner) or 0)
    return os.path.getsize(path)


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
        splits = tuple(Split(path, "videos", i, min(len(videos), i + VIDEOS_PER_SPLIT),
                             tuple(videos[i:i + VIDEOS_PER_SPLIT]))
                       for i in range(0, len(videos), VIDEOS_PER_SPLIT))
        return Dataset(path, path, splits)
    if not data:
        raise ConfigError(f"dataset {path}: use JSON lines (.jsonl, .json, optionally .gz), Parquet (.parquet), "
                          "a WebDataset archive (.tar, .zip), "
                          "a HuggingFace dataset folder (.arrow), or a folder of videos")
    splits: list[Split] = []
    for file in data:
        kind = _kind(file)
        if kind == "parquet":
            splits += [Split(file, "parquet", g, g + 1) for g in range(_row_groups(file))]
        elif kind == "jsonl":
            if _first_byte(file) == b"[":
                splits.append(Split(file, "json-array"))
                continue
            size = _size(file)
            splits += [Split(file, "jsonl", s, min(size, s + split_bytes)) for s in range(0, max(size, 1), split_bytes)]
        else:
            splits.append(Split(file, kind))
    base = path if folder else _parent(data[0])
    return Dataset(path, base, tuple(splits))


def _parent(path: str) -> str:
    if is_url(path):
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest)}"
    return os.path.dirname(os.path.abspath(path))


def _first_byte(path: str) -> bytes:
    with open_binary(path) as f:
        while True:
            b = f.read(1)
            if not b or not b.isspace():
                return b


def _row_groups(path: str) -> int:
    import pyarrow.parquet as pq

    try:
        with open_binary(path) as f:
            return pq.ParquetFile(f).metadata.num_row_groups
    except ValueError as exc:  # of a glob or folder, name the one file that is broken
        raise ValueError(f"{path}: {exc}") from None


# ---- counting and reading ---------------------------------------------------------

def _jsonl_lines(split: Split) -> Iterator[bytes]:
    """The lines that start inside the split's byte range (a line that
    crosses its start belongs to the split before)."""
    with open_binary(split.path) as f:
        if split.start > 0:
            f.seek(split.start - 1)
            f.readline()  # the end of the previous split's last line
        position = f.tell()
        while position < split.stop or split.stop == split.start == 0:
            line = f.readline()
            if not line:
                return
            position += len(line)
            yield line


def _lines(split: Split) -> Iterator[bytes]:
    if split.kind == "jsonl":
        yield from _jsonl_lines(split)
    else:  # jsonl.gz: one split per file
        with open_binary(split.path) as raw, gzip.open(raw, "rb") as f:
            yield from f


def count(split: Split) -> int:
    """How many rows (samples) the split holds."""
    if split.kind in ("jsonl", "jsonl.gz"):
        return sum(1 for line in _lines(split) if line.strip())
    if split.kind == "parquet":
        import pyarrow.parquet as pq

        with open_binary(split.path) as f:
            return pq.ParquetFile(f).metadata.row_group(split.start).num_rows
    if split.kind == "videos":
        return len(split.videos)
    return sum(1 for _ in _records(split))


def read(split: Split, first_index: int) -> Iterator[Row]:
    """The split's rows, numbered from ``first_index`` (of a weighted
    dataset, only the rows drawn). A row that is not a JSON object, or that
    no output could hold (see :func:`row_defect`), comes with an error
    instead of stopping the run."""
    for row in _read_all(split, first_index):
        if selected(split, row.index):
            yield row


def count_selected(split: Split, first_index: int, rows_in_split: int) -> int:
    """How many of the split's rows a weighted dataset draws (all of a plain one)."""
    if split.weight >= 1.0:
        return rows_in_split
    return sum(selected(split, i) for i in range(first_index, first_index + rows_in_split))


def _read_all(split: Split, first_index: int) -> Iterator[Row]:
    index = first_index
    if split.kind in ("jsonl", "jsonl.gz"):
        for line in _lines(split):
            if not line.strip():
                continue
            # named by its index (its row among the non-blank lines), which
            # every output uses too; a split does not know its line numbers
            item, problem = _parse(line)
            if problem is not None:
                yield Row(index, line_text(line), f"{split.path}: row {index} {problem}")
            else:
                yield _row(index, item, split.path, line)
            index += 1
        return
    for item in _records(split):
        if isinstance(item, _ArchiveDefect):
            yield Row(index, None, f"{split.path}: row {index}: {item.problem}")
        else:
            yield _row(index, item, split.path)
        index += 1


def _parse(line: bytes) -> tuple[Any, str | None]:
    """A line's value, or what is wrong with it. Every way a line can fail
    to parse is that row's own: the run goes on."""
    try:
        return json.loads(line), None
    except UnicodeDecodeError as exc:  # before JSONDecodeError: both are ValueErrors
        return None, (f"is not UTF-8 text (byte {line[exc.start:exc.start + 1]!r} at offset {exc.start}): "
                      "re-encode the file as UTF-8")
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON: {exc}"
    except RecursionError:
        return None, (f"nests deeper than the JSON parser can follow; textsieve takes rows up to {MAX_DEPTH} "
                      "levels deep: flatten the row")
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return None, f"cannot be read as JSON: {exc}"


def line_text(line: bytes) -> str:
    """A line that cannot be a sample, as text for its error record: the
    line itself, an undecodable byte as U+FFFD."""
    return line.decode("utf-8", "replace").rstrip("\n")


def _records(split: Split) -> Iterator[Any]:
    if split.kind == "parquet":
        import pyarrow.parquet as pq

        with open_binary(split.path) as f:
            yield from pq.ParquetFile(f).read_row_group(split.start).to_pylist()
    elif split.kind == "arrow":
        import pyarrow as pa

        with open_binary(split.path) as f:
            reader = pa.ipc.open_stream(f)
            for batch in reader:
                yield from batch.to_pylist()
    elif split.kind == "json-array":
        with open_binary(split.path) as f:
            try:
                items = json.load(f)
            except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError too
                raise ConfigError(f"dataset {split.path} starts with '[' but is not one JSON array ({exc!r}): "
                                  "write one sample object per line (JSON lines) or a single array") from None
        yield from items
    elif split.kind == "videos":
        for video in split.videos:
            yield {"videos": [video]}
    elif split.kind in ARCHIVE_KINDS:
        yield from _archive_samples(split.path, split.kind)


ARCHIVE_KINDS = tuple(suffix[1:] for suffix in ARCHIVE_SUFFIXES)


def member_url(kind: str, archive: str, member: str) -> str:
    """A member's address, fsspec's chained URL (``tar://000123.mp4::/data/shard-0.tar``):
    it names the archive and the member, and opening it reads the member's
    bytes in place, by seeking within the archive, locally or in a store."""
    return f"{kind}://{member}::{archive if is_url(archive) else os.path.abspath(archive)}"


def _archive_samples(archive: str, kind: str) -> Iterator[Any]:
    """An archive's samples, WebDataset's way: members grouped by key (the
    member's name up to the first dot of its file name: ``a/000123.mp4`` and
    ``a/000123.json`` are one sample), in archive order. A sample is its
    ``.json`` member (an object; anything else is that row's error), with
    ``text`` from a ``.txt`` member where the JSON has none, and ``videos``
    the key's video members (by name), which replace a ``videos`` field the
    JSON may hold; a key without a video member keeps the JSON's own."""
    import fsspec

    fs = fsspec.filesystem(kind, fo=archive)
    groups: dict[str, list[str]] = {}
    for member in fs.find(""):
        folder, name = posixpath.split(member)
        key = posixpath.join(folder, name.split(".", 1)[0])
        groups.setdefault(key, []).append(member)
    for key, members in groups.items():
        named = {m[len(key):].lower(): m for m in members}
        sample: Any = {}
        if ".json" in named:
            parsed, problem = _parse(fs.cat(named[".json"]))
            if problem is not None:
                yield _ArchiveDefect(f"{named['.json']} {problem}")
                continue
            sample = parsed
        if isinstance(sample, dict):
            if ".txt" in named and "text" not in sample:
                sample = {**sample, "text": fs.cat(named[".txt"]).decode("utf-8", "replace")}
            videos = sorted(m for m in members if m.lower().endswith(VIDEO_SUFFIXES))
            if videos:
                sample = {**sample, "videos": [member_url(kind, archive, m) for m in videos]}
        yield sample


@dataclass(frozen=True)
class _ArchiveDefect:
    """A member that cannot be a sample: its row's error, as a bad line is."""

    problem: str


# Deeper rows are refused (their own error record): pickling a row to a
# worker and writing it recurse once per level, and past Python's recursion
# limit (1000 frames, the caller's included) either would stop the run.
# 256 leaves that margin; a real sample is a few levels deep.
MAX_DEPTH = 256
_SURROGATE = re.compile("[\ud800-\udfff]")


def _row(index: int, item: Any, path: str, line: bytes | None = None) -> Row:
    where = f"{path}: row {index}"
    defect, nonfinite = row_defect(item)
    if defect is not None:
        return Row(index, _as_text(item) if line is None else line_text(line), f"{where}: {defect}")
    if nonfinite:
        item = finite(item)
    if not isinstance(item, dict):
        return Row(index, item, f"{where} is a {type(item).__name__}, not a JSON object: write one object per sample")
    return Row(index, item)


def row_defect(item: Any) -> tuple[str | None, bool]:
    """What makes a row unwritable, if anything (nesting past
    :data:`MAX_DEPTH`, a lone surrogate in a string or key, which is half a
    UTF-16 pair and has no UTF-8 form), and whether it holds a non-finite
    float (NaN, Infinity: written as null, JSON has no such number). One
    walk without recursion, so that a deep row cannot stop it."""
    nonfinite = False
    stack: list[tuple[Any, int, str]] = [(item, 1, "")]
    while stack:
        value, depth, field = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                return _surrogate(field, value), nonfinite
        elif isinstance(value, float):
            nonfinite = nonfinite or not math.isfinite(value)
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return (f"{_what(field)} nests more than {MAX_DEPTH} levels deep, the most textsieve takes: "
                        "flatten it, or store it as a JSON string"), nonfinite
            children = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in children:
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    return _surrogate(field, key), nonfinite
                # messages name the top-level field: the one a user knows
                stack.append((child, depth + 1, field or (key if isinstance(key, str) else f"[{key}]")))
    return None, nonfinite


def _what(field: str) -> str:
    return f"field {field!r}" if field else "the row"


def _surrogate(field: str, text: str) -> str:
    at = _SURROGATE.search(text)
    assert at is not None
    return (f"{_what(field)} holds a lone surrogate ({at.group()!a} at character {at.start()}), which is half "
            "of a UTF-16 pair and cannot be written as UTF-8: fix the text where the row was made")


def _as_text(item: Any) -> Any:
    """A defective row from a source without lines (Parquet, a JSON array)
    as ASCII JSON text for its error record, where that can be made."""
    try:
        return dumps(item, ascii=True)
    except RecursionError:
        return None


def rows(dataset: Dataset) -> Iterator[Row]:
    """Every row in order, numbered: the sequential reader (serial, local).
    Rows are numbered over all rows of a mixture, drawn or not, so that a
    row's number never depends on the draw."""
    first = 0
    for split in dataset.splits:
        last = first - 1
        for row in _read_all(split, first):
            last = row.index
            if selected(split, row.index):
                yield row
        first = last + 1
