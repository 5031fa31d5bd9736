"""Sharded outputs: kept, dropped, errors and stats as many files, each
committed atomically and listed in a manifest, written where the work is done.

With ``export_shard_size`` (bytes, as in Data-Juicer) the export folder holds
``kept/``, ``dropped/``, ``errors/`` and ``stats/``, each a set of shards
(``part-<writer>-<n>.jsonl`` or ``.parquet`` per ``export_type``; errors are
always JSON lines, their ``sample`` being anything a bad row held), and
``manifest.jsonl``. A writer buffers outcomes and, once the buffer reaches
the shard size (or when asked), writes one shard per output under a
temporary name, syncs it and renames it: a shard file either is whole or
does not exist. The manifest is the commit: its first line is the run's
fingerprint (as the journal's), then one line per flush naming the flush's
files, their row counts and the sample indices in each. The samples of a
listed flush are done; anything else in the folder is an interrupted write,
removed when the run resumes, and its samples judged again: exactly once.
Kept and dropped shards are readable while the run goes on; the summary is
counted from the manifest.

Writers flush whatever they hold (a Ray batch, a partial shard every
``flush_every_s``), so when the run ends each output's shards are rewritten
as Data-Juicer's exporter sizes them: ``ceil(Arrow size / export_shard_size)``
shards of about equal size, rows in index order within each (``compact``).
The rewrite is committed like a flush: new files, then the manifest, then the
old files go; a crash between leaves one set or the other listed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError
from ..judging import with_stats
from ..outcome import SampleOutcome
from .atomic import replacing
from .parquet import arrow_table, common_schema, conform, replace_file, shape, warn_mixed
from .strict_json import dumps
from .journal import check_same_run, fingerprint

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
# every shard of an output but its last lies in this band of export_shard_size
# (Arrow bytes, as Data-Juicer counts): shards already inside it are not rewritten
SHARD_BAND = (0.5, 1.5)
OUTPUTS = ("kept", "dropped", "errors", "stats")


def folders(kept: str = "kept") -> dict[str, str]:
    """Each output's folder in the export folder: its own name, but the kept
    shards' folder may be named after Data-Juicer's export_path (RunConfig.kept_shards)."""
    return {name: kept if name == "kept" else name for name in OUTPUTS}


@dataclass
class ShardEntry:
    """One flush: its files (by output), rows, and the sample indices in each
    file, as sorted ``[start, stop)`` ranges (a shard's rows are in index
    order): small whatever the shard's size, so the driver's memory does not
    grow with the dataset."""

    files: dict[str, str] = field(default_factory=dict)  # output -> path relative to the export folder
    rows: dict[str, int] = field(default_factory=dict)
    indices: dict[str, list[list[int]]] = field(default_factory=dict)

    def indices_of(self, name: str) -> list[int]:
        """The file's rows' indices, in its row order."""
        return _expand(self.indices.get(name, []))

    def done_ranges(self) -> list[list[int]]:
        return [r for name in ("kept", "dropped", "errors") for r in self.indices.get(name, [])]


def _ranges(indices: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for i in sorted(indices):
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def _expand(ranges: list[list[int]]) -> list[int]:
    return [i for start, stop in ranges for i in range(start, stop)]


class ShardWriter:
    """Buffers outcomes; writes them as one shard per output once they reach
    ``shard_bytes`` (their JSON size) or on ``flush``. ``outputs`` limits what
    it writes (on Ray, the driver writes the errors, after the failure-streak
    guard, and the workers the rest)."""

    def __init__(self, export_dir: Path, fmt: str, shard_bytes: int, outputs: tuple[str, ...] = OUTPUTS,
                 kept: str = "kept"):
        self.dir, self.fmt, self.shard_bytes, self.outputs = Path(export_dir), fmt, shard_bytes, outputs
        self.folders = folders(kept)
        self.writer = f"{os.getpid()}{secrets.token_hex(3)}"
        self.sequence = 0
        self._rows: dict[str, list[tuple[int, Any]]] = {name: [] for name in outputs}
        self._bytes = 0

    def add(self, outcome: SampleOutcome) -> ShardEntry | None:
        """Buffer one outcome; the entry of a flush it completed, if any."""
        if outcome.status == "error":
            records = {"errors": outcome.error_record()}
        else:
            records = {outcome.status: with_stats(outcome.sample, outcome.ratios), "stats": outcome.stats_record()}
        for name, record in records.items():
            if name in self.outputs:
                self._rows[name].append((outcome.index, record))
                self._bytes += len(dumps(record))
        return self.flush() if self._bytes >= self.shard_bytes else None

    @property
    def pending(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def flush(self) -> ShardEntry | None:
        """Write what is buffered, each file atomically; None if nothing was."""
        if not self.pending:
            return None
        entry = ShardEntry()
        for name, rows in self._rows.items():
            if not rows:
                continue
            # in index order: the manifest lists a shard's indices as sorted ranges
            rows = sorted(rows, key=lambda row: row[0])
            fmt = "jsonl" if name == "errors" else self.fmt
            relative = f"{self.folders[name]}/part-{self.writer}-{self.sequence:05d}.{fmt}"
            _write_atomic(self.dir / relative, [record for _, record in rows], fmt)
            entry.files[name] = relative
            entry.rows[name] = len(rows)
            entry.indices[name] = _ranges([index for index, _ in rows])
        self.sequence += 1
        self._rows = {name: [] for name in self.outputs}
        self._bytes = 0
        return entry


def _write_atomic(path: Path, records: list[Any], fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        table = arrow_table(records)
        warn_mixed(table.schema, f"Parquet shard {path.name}")
        replace_file(path, table)
        return
    _write_lines(path, [(dumps(record) + "\n").encode("utf-8") for record in records])


def unify_parquet_shards(paths: list[Path]) -> list[Path]:
    """Give the Parquet shards of one output one schema, so that the folder
    reads as one dataset (pyarrow, Ray Data and Data-Juicer take the first
    file's schema). Each shard's types come from its own rows: a shard of
    rows without videos has ``videos: list<null>`` where the others have
    ``list<string>``, and a field may be numbers in one shard and text in
    another. Types are promoted across shards, and a field no one type holds
    becomes text in every shard, by the rule of :mod:`textsieve.data.parquet`
    (a string stays the same string). Only the shards that differ are
    rewritten, each atomically. Returns them."""
    import pyarrow.parquet as pq

    if len(paths) < 2:
        return []
    schemas = [pq.read_schema(path) for path in paths]
    schema, as_text = common_schema(schemas)
    if as_text:
        log.warning("Parquet shards: field(s) %s hold values of different types across shards; stored as text in "
                    "every shard (strings as they are, other values as their JSON text)", ", ".join(sorted(as_text)))
    rewritten = []
    for path, own in zip(paths, schemas):
        if shape(own) == shape(schema):
            continue
        replace_file(path, conform(pq.read_table(path), schema))
        rewritten.append(path)
    return rewritten


def _rows(path: Path):
    """A shard's rows: an Arrow table for Parquet, the raw lines for JSON
    lines (as they are: parsed and written again they could change, and as
    bytes they take a fraction of the memory of parsed records)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    return [line for line in path.read_bytes().splitlines(keepends=True) if line.strip()]


def _rechunk(sources: list[tuple[Path, list[int], int]], shard_bytes: int) -> Iterator[tuple[Any, list[int]]]:
    """The sources' rows (path, sample indices, Arrow size) regrouped into
    ``ceil(total / shard_bytes)`` shards of about equal Arrow size, as
    Data-Juicer's exporter splits a dataset, each in index order; within a
    source, rows are taken as equally large. One source is read at a time,
    and one shard is held."""
    import pyarrow as pa

    total = sum(size for _, _, size in sources)
    count = max(1, math.ceil(total / shard_bytes))
    target = total / count
    pieces: list[Any] = []
    indices: list[int] = []
    done = 0.0  # Arrow bytes taken so far
    written = 0

    def emit() -> tuple[Any, list[int]]:
        order = sorted(range(len(indices)), key=indices.__getitem__)
        if isinstance(pieces[0], list):
            lines = [line for piece in pieces for line in piece]
            return [lines[i] for i in order], [indices[i] for i in order]
        return pa.concat_tables(pieces).take(order), [indices[i] for i in order]

    for path, idx, size in sources:
        data = _rows(path)
        n = len(data) if isinstance(data, list) else data.num_rows
        per_row = size / max(1, n)
        start = 0
        while start < n:
            boundary = (written + 1) * target
            take = n - start if written == count - 1 else \
                max(1, min(n - start, math.ceil((boundary - done) / max(per_row, 1e-9) - 1e-9)))
            pieces.append(data[start:start + take] if isinstance(data, list) else data.slice(start, take))
            indices += idx[start:start + take]
            done += take * per_row
            start += take
            if written < count - 1 and done >= boundary - 1e-6:
                yield emit()
                pieces, indices, written = [], [], written + 1
    if pieces:
        yield emit()


def shard_nbytes(path: Path) -> int:
    """A shard's size as Data-Juicer counts a dataset: its rows' Arrow bytes
    in memory (not the file's, which compression and encoding shrink)."""
    data = _rows(path)
    return (arrow_table([json.loads(line) for line in data]) if isinstance(data, list) else data).nbytes


def _write_lines(path: Path, lines: list[bytes]) -> None:
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.writelines(lines)


def read_manifest(export_dir: Path) -> tuple[dict, list[ShardEntry], bool]:
    """A manifest's header, its committed entries and whether the run
    finished; read only (a torn last line is ignored, nothing is removed)."""
    path = Path(export_dir) / MANIFEST
    lines = path.read_bytes().split(b"\n")
    try:
        header = json.loads(lines[0])
    except ValueError:
        raise ConfigError(f"{path} is not a textsieve manifest; remove it or pass --restart") from None
    entries, complete = [], False
    for line in lines[1:-1]:  # the last piece is empty, or a line torn by a crash
        try:
            data = json.loads(line)
        except ValueError:
            break
        if data.get("complete"):
            complete = True
            continue
        entries.append(ShardEntry(**data))
    return header, entries, complete


def read_shard(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Manifest:
    """The sharded run's journal: the fingerprint, then one line per flush.
    Opening it reads what is done and removes shard files it does not list."""

    def __init__(self, export_dir: Path, settings: dict, restart: bool = False, kept: str = "kept"):
        self.dir = Path(export_dir)
        self.folders = folders(kept)
        self.path = self.dir / MANIFEST
        self.settings, self.key = settings, fingerprint(settings)
        self.entries: list[ShardEntry] = []
        self.complete = False
        if self.path.exists() and not restart:
            self._read()
        else:
            self._start()
        self._remove_unlisted()
        self._file = open(self.path, "a", encoding="utf-8")

    def _start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for folder in self.folders.values():  # a restart: earlier shards are not this run's
            for old in (self.dir / folder).glob("*"):
                old.unlink()
        self._write_all()

    def _write_all(self) -> None:
        with replacing(self.path, self.path.with_name(self.path.name + ".rewrite")) as tmp, \
                open(tmp, "w", encoding="utf-8") as f:
            f.write(dumps({"fingerprint": self.key, "settings": self.settings}, ascii=True) + "\n")
            for entry in self.entries:
                f.write(self._line(entry))
            if self.complete:
                f.write(json.dumps({"complete": True}) + "\n")

    @staticmethod
    def _line(entry: ShardEntry) -> str:
        return json.dumps(asdict(entry)) + "\n"

    def _read(self) -> None:
        header, self.entries, self.complete = read_manifest(self.dir)
        check_same_run(self.dir, header, self.settings)
        self._write_all()  # without a torn tail

    def _remove_unlisted(self) -> None:
        listed = {f for entry in self.entries for f in entry.files.values()}
        for folder in self.folders.values():
            for path in (self.dir / folder).glob("*") if (self.dir / folder).is_dir() else ():
                if f"{folder}/{path.name}" not in listed:
                    path.unlink()

    def done_ranges(self) -> list[tuple[int, int]]:
        """Every committed sample as merged ``(start, stop)`` ranges."""
        merged: list[list[int]] = []
        for start, stop in sorted(r for entry in self.entries for r in entry.done_ranges()):
            if merged and merged[-1][1] >= start:
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
        return [(a, b) for a, b in merged]

    def commit(self, entry: ShardEntry) -> None:
        self.entries.append(entry)
        self._file.write(self._line(entry))
        self._file.flush()
        os.fsync(self._file.fileno())

    def compact(self, shard_bytes: int) -> None:
        """Rewrite each output whose shards are not the size asked for (every
        shard but the last inside SHARD_BAND) into Data-Juicer's shard count,
        committed as one manifest rewrite."""
        for output in ("kept", "dropped", "stats"):  # one schema first: shards of one output concatenate
            unify_parquet_shards([self.dir / e.files[output] for e in self.entries
                                  if e.files.get(output, "").endswith(".parquet")])
        lo, hi = (shard_bytes * x for x in SHARD_BAND)
        new_entries: list[ShardEntry] = []
        replaced: list[Path] = []
        token = secrets.token_hex(3)
        for output in OUTPUTS:
            holders = [e for e in self.entries if output in e.files]
            paths = [self.dir / e.files[output] for e in holders]
            if len(paths) < 2:
                continue
            sizes = [shard_nbytes(p) for p in paths]
            if all(lo <= size <= hi for size in sizes[:-1]):
                continue
            sources = [(p, e.indices_of(output), size) for p, e, size in zip(paths, holders, sizes)]
            for n, (rows, indices) in enumerate(_rechunk(sources, shard_bytes)):
                relative = f"{self.folders[output]}/part-c{token}-{n:05d}{paths[0].suffix}"
                if isinstance(rows, list):
                    _write_lines(self.dir / relative, rows)
                else:
                    replace_file(self.dir / relative, rows)
                new_entries.append(ShardEntry({output: relative}, {output: len(indices)}, {output: _ranges(indices)}))
            for e in holders:
                del e.files[output], e.rows[output], e.indices[output]
            replaced += paths
        if not replaced:
            return
        self.entries = [e for e in self.entries if e.files] + new_entries
        self._file.close()
        self._write_all()
        self._file = open(self.path, "a", encoding="utf-8")
        for path in replaced:
            path.unlink()
        log.info("shards rewritten to export_shard_size: %d file(s) replaced", len(replaced))

    def mark_complete(self) -> None:
        for output in ("kept", "dropped", "stats"):
            unify_parquet_shards([self.dir / e.files[output] for e in self.entries
                                  if e.files.get(output, "").endswith(".parquet")])
        self.complete = True
        self._file.write(json.dumps({"complete": True}) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def drop_errors(self, kinds: frozenset[str]) -> set[int]:
        """Take the samples whose error kind is in ``kinds`` back out of the
        run (``--retry-errors``): their error shards are rewritten without
        them, and the manifest with the new shards. Returns their indices."""
        retried: set[int] = set()
        for entry in self.entries:
            name = entry.files.get("errors")
            if name is None:
                continue
            records = read_shard(self.dir / name)
            keep = [r for r in records if r["kind"] not in kinds]
            if len(keep) == len(records):
                continue
            retried |= {r["index"] for r in records if r["kind"] in kinds}
            (self.dir / name).unlink()
            del entry.files["errors"], entry.rows["errors"], entry.indices["errors"]
            if keep:
                renamed = name.replace(".jsonl", f"-r{secrets.token_hex(2)}.jsonl")
                _write_atomic(self.dir / renamed, keep, "jsonl")
                entry.files["errors"], entry.rows["errors"] = renamed, len(keep)
                entry.indices["errors"] = _ranges([r["index"] for r in keep])
        self.complete = False
        self._file.close()
        self._write_all()
        self._file = open(self.path, "a", encoding="utf-8")
        return retried

    def records(self, output: str) -> Iterator[dict]:
        for entry in self.entries:
            if output in entry.files:
                yield from read_shard(self.dir / entry.files[output])

    def close(self) -> None:
        self._file.close()
