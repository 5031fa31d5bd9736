"""One reader per dataset format: how a file of that format is cut into
splits, how a split's rows are counted, and how they are read, numbered,
each with its own error where it cannot be a sample.

A split's ``kind`` names its reader in :data:`FORMATS`, the one table:
a new format is one more :class:`Format` subclass there. Which files a
dataset path names, mixtures and the draw of a weighted dataset are
:mod:`textsieve.data.sources`' business; this module knows single files
(local paths and fsspec URLs alike) and does not import it.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import posixpath
import re
from dataclasses import dataclass
from typing import IO, Any, Iterator

from ..errors import ConfigError
from .row import Row
from .strict_json import dumps, finite

VIDEOS_PER_SPLIT = 10_000
# WebDataset-style archives, read in place (uncompressed tar; zip, its members stored or deflated)
ARCHIVE_SUFFIXES = (".tar", ".zip")
ARCHIVE_KINDS = tuple(suffix[1:] for suffix in ARCHIVE_SUFFIXES)
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif", ".m4v", ".ts", ".flv", ".wmv", ".mpg", ".mpeg")


def is_url(path: str) -> bool:
    return "://" in path


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


def _size(path: str) -> int:
    if is_url(path):
        fs, inner = filesystem(path)
        return int(fs.size(inner) or 0)
    return os.path.getsize(path)


@dataclass(frozen=True)
class Split:
    """A piece of the dataset that can be counted and read alone."""

    path: str  # the file (or, for a video folder, the folder)
    kind: str  # its reader's key in FORMATS: jsonl | jsonl.gz | json-array | parquet | arrow | videos | tar | zip
    start: int = 0  # byte offset (jsonl), row group (parquet), first video (videos)
    stop: int = 0  # end byte (jsonl), row group + 1 (parquet), last video + 1 (videos)
    videos: tuple[str, ...] = ()  # the split's video files (videos)
    weight: float = 1.0  # of a weighted dataset_path: the share of its rows taken
    part: int = 0  # which dataset of a mixture it belongs to (seeds the draw)


class Format:
    """How the files of one dataset format are cut into splits, and a split
    counted and read. A format of whole records (a Parquet row, an Arrow
    row, an archive's sample) writes only ``records``: counting and numbered
    rows follow from it. A split is a whole file unless the format cuts it
    finer."""

    kind: str
    suffixes: tuple[str, ...] = ()  # the file names that say this format; none: it is found otherwise

    def splits(self, file: str, split_bytes: int) -> list[Split]:
        return [Split(file, self.kind)]

    def count(self, split: Split) -> int:
        """How many rows (samples) the split holds."""
        return sum(1 for _ in self.records(split))

    def records(self, split: Split) -> Iterator[Any]:
        """The split's records in order; one that cannot be a sample as an :class:`_ArchiveDefect`."""
        raise NotImplementedError

    def rows(self, split: Split, first_index: int) -> Iterator[Row]:
        """The split's rows, numbered from ``first_index``, drawn or not."""
        index = first_index
        for item in self.records(split):
            if isinstance(item, _ArchiveDefect):
                yield Row(index, None, f"{split.path}: row {index}: {item.problem}")
            else:
                yield _row(index, item, split.path)
            index += 1


class _Lines(Format):
    """JSON lines: a row per non-blank line, its error naming the line as it is."""

    def lines(self, split: Split) -> Iterator[bytes]:
        raise NotImplementedError

    def count(self, split: Split) -> int:
        return sum(1 for line in self.lines(split) if line.strip())

    def rows(self, split: Split, first_index: int) -> Iterator[Row]:
        index = first_index
        for line in self.lines(split):
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


class JsonLines(_Lines):
    """Uncompressed JSON lines, cut into byte ranges; a ``.json`` or
    ``.jsonl`` file that starts with ``[`` is a :class:`JsonArray`."""

    kind = "jsonl"
    suffixes = (".jsonl", ".json")

    def splits(self, file: str, split_bytes: int) -> list[Split]:
        if _first_byte(file) == b"[":
            return reader(JsonArray.kind).splits(file, split_bytes)
        size = _size(file)
        return [Split(file, self.kind, s, min(size, s + split_bytes)) for s in range(0, max(size, 1), split_bytes)]

    def lines(self, split: Split) -> Iterator[bytes]:
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


class GzipJsonLines(_Lines):
    """Gzipped JSON lines: one split per file."""

    kind = "jsonl.gz"
    suffixes = (".jsonl.gz", ".json.gz")

    def lines(self, split: Split) -> Iterator[bytes]:
        with open_binary(split.path) as raw, gzip.open(raw, "rb") as f:
            yield from f


def _first_byte(path: str) -> bytes:
    with open_binary(path) as f:
        while True:
            b = f.read(1)
            if not b or not b.isspace():
                return b


class JsonArray(Format):
    """One JSON array of samples, read whole (found by its first byte, not its name)."""

    kind = "json-array"

    def records(self, split: Split) -> Iterator[Any]:
        with open_binary(split.path) as f:
            try:
                items = json.load(f)
            except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError too
                raise ConfigError(f"dataset {split.path} starts with '[' but is not one JSON array ({exc!r}): "
                                  "write one sample object per line (JSON lines) or a single array") from None
        yield from items


class Parquet(Format):
    """Parquet, a split per row group; counted from its metadata."""

    kind = "parquet"
    suffixes = (".parquet",)

    def splits(self, file: str, split_bytes: int) -> list[Split]:
        return [Split(file, self.kind, g, g + 1) for g in range(_row_groups(file))]

    def count(self, split: Split) -> int:
        import pyarrow.parquet as pq

        with open_binary(split.path) as f:
            return pq.ParquetFile(f).metadata.row_group(split.start).num_rows

    def records(self, split: Split) -> Iterator[Any]:
        import pyarrow.parquet as pq

        with open_binary(split.path) as f:
            yield from pq.ParquetFile(f).read_row_group(split.start).to_pylist()


def _row_groups(path: str) -> int:
    import pyarrow.parquet as pq

    try:
        with open_binary(path) as f:
            return pq.ParquetFile(f).metadata.num_row_groups
    except ValueError as exc:  # of a glob or folder, name the one file that is broken
        raise ValueError(f"{path}: {exc}") from None


class Arrow(Format):
    """An Arrow stream file, as HuggingFace's ``save_to_disk`` writes them."""

    kind = "arrow"
    suffixes = (".arrow",)

    def records(self, split: Split) -> Iterator[Any]:
        import pyarrow as pa

        with open_binary(split.path) as f:
            stream = pa.ipc.open_stream(f)
            for batch in stream:
                yield from batch.to_pylist()


class VideoFolder(Format):
    """A folder of videos, one sample per video (``{"videos": [path]}``).
    Found by the folder's content, not by a name: its splits are cut from
    the folder's listing (:meth:`folder_splits`)."""

    kind = "videos"

    @classmethod
    def folder_splits(cls, folder: str, videos: list[str]) -> list[Split]:
        return [Split(folder, cls.kind, i, min(len(videos), i + VIDEOS_PER_SPLIT),
                      tuple(videos[i:i + VIDEOS_PER_SPLIT]))
                for i in range(0, len(videos), VIDEOS_PER_SPLIT)]

    def count(self, split: Split) -> int:
        return len(split.videos)

    def records(self, split: Split) -> Iterator[Any]:
        for video in split.videos:
            yield {"videos": [video]}


class Archive(Format):
    """A WebDataset archive (``tar`` or ``zip``, its kind), one split per file."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.suffixes = (f".{kind}",)

    def records(self, split: Split) -> Iterator[Any]:
        yield from _archive_samples(split.path, self.kind)


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


FORMATS: dict[str, Format] = {f.kind: f for f in (JsonLines(), GzipJsonLines(), JsonArray(), Parquet(), Arrow(),
                                                  VideoFolder(), *(Archive(kind) for kind in ARCHIVE_KINDS))}


def reader(kind: str) -> Format:
    """The reader of a split's (or a file's) kind: the one place it is looked up."""
    return FORMATS[kind]


def format_of(name: str) -> Format | None:
    """The format a file's name says (its suffix), if any."""
    # of a URL, the path decides, not a query (a presigned URL's signature)
    lower = (name.split("?", 1)[0] if is_url(name) else name).lower()
    return next((f for f in FORMATS.values() if lower.endswith(f.suffixes)), None)


# ---- a record as a row --------------------------------------------------------------

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
