"""The two ways a run's outputs are kept, behind one interface for the
collector: single files in input order with the journal (the default), or
shards with their manifest (``export_shard_size``).

Both know which samples are done, take outcomes, commit them durably, take
transient errors back out for ``--retry-errors``, and at the end count what
the folder holds (the summary adds up from there, over every session).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

from ..outcome import SampleOutcome
from .export import ExportWriter, check_parts, iter_records, output_paths, part_of, read_jsonl, reopen_for_retry
from .journal import Journal, index_ranges
from .shards import OUTPUTS, Manifest, ShardEntry, ShardWriter

log = logging.getLogger(__name__)


@dataclass
class Totals:
    counts: dict[str, int]  # kept, dropped, errors
    error_kinds: dict[str, int]
    retried: int = 0
    resumed_with_done: int = 0
    files: dict = field(default_factory=dict)


class OutputStore(Protocol):
    """What the collector needs of a run's outputs, whichever way they are
    kept: the samples already done (to resume), outcomes written and
    committed durably, the totals at the end, and the records read back."""

    complete: bool  # the journal or manifest says a finished run wrote them
    retried: set[int]  # samples taken back out for --retry-errors

    @property
    def done(self) -> set[int]: ...

    @property
    def done_count(self) -> int: ...

    def done_ranges(self) -> list[tuple[int, int]]: ...

    def write(self, outcome: SampleOutcome) -> None: ...

    def commit(self) -> None: ...

    def finish(self) -> Totals: ...

    def mark_complete(self) -> None: ...

    def records(self, name: str) -> Iterator[dict]: ...

    def close(self) -> None: ...


class SingleFiles:
    """kept/dropped/errors/stats as one JSON-lines file each, sorted into
    input order when the run finishes; parts and journal while it runs."""

    def done_ranges(self) -> list[tuple[int, int]]:
        return index_ranges(self.done)

    @property
    def done_count(self) -> int:
        return len(self.done)

    def __init__(self, export_dir: Path, kept_file: Path, settings: dict, restart: bool,
                 retry_kinds: frozenset[str] | None):
        self.dir, self.kept_file = Path(export_dir), Path(kept_file)
        self.journal = Journal(export_dir, settings, restart=restart)
        resumed = self.journal.resumed
        if resumed.done and not resumed.complete:
            self._check_parts()
            resumed = self.journal.resumed
        # a stopped retry, resumed: its samples still count (and are not retried twice);
        # a finished run's retry is a new round
        before = frozenset() if resumed.complete else frozenset(resumed.retried)
        self.retried: set[int] = set(before)
        if retry_kinds and not (resumed.complete and not self._has_errors(retry_kinds)):
            done, offsets, again = reopen_for_retry(export_dir, kept_file, resumed.done, resumed.offsets,
                                                    resumed.complete, retry_kinds, before)
            self.retried |= again
            self.journal.rewrite(done, offsets, self.retried)
        self.complete = self.journal.resumed.complete
        self.done = set(self.journal.resumed.done)
        self.writer: ExportWriter | None = None if self.complete else ExportWriter(export_dir, kept_file,
                                                                                    self.journal.resumed.offsets)
        self._pending: list[int] = []

    def _check_parts(self) -> None:
        """Resume checks what it resumes: part files that lost committed
        records (cut short, NUL bytes) are repaired and those samples judged
        again (export.check_parts), instead of breaking the finish for good."""
        resumed = self.journal.resumed
        done, offsets, damaged = check_parts(self.dir, self.kept_file, resumed.done, resumed.offsets)
        if not damaged:
            return
        lost = len(resumed.done) - len(done)
        for name, (end, expected) in damaged.items():
            log.warning("resuming: %s holds whole records up to byte %d, but the journal committed %d bytes (cut "
                        "short or damaged since)", part_of(output_paths(self.dir, self.kept_file)[name]), end, expected)
        log.warning("resuming: %d sample(s) whose records were lost are judged again; the part files were repaired", lost)
        self.journal.rewrite(done, offsets, resumed.retried)

    def _has_errors(self, kinds: frozenset[str]) -> bool:
        path = output_paths(self.dir, self.kept_file)["errors"]
        return path.exists() and any(r["kind"] in kinds for r in read_jsonl(path))

    def write(self, outcome: SampleOutcome) -> None:
        assert self.writer is not None
        self.writer.write(outcome)
        self._pending.append(outcome.index)

    def commit(self) -> None:
        if self._pending and self.writer is not None:
            self.journal.commit(self._pending, self.writer.commit())
            self._pending = []

    def finish(self) -> Totals:
        self.commit()
        assert self.writer is not None
        self.writer.finalize()
        paths = output_paths(self.dir, self.kept_file)
        counts = {name: sum(1 for _ in read_jsonl(paths[name])) for name in ("kept", "dropped", "errors")}
        kinds = Counter(r["kind"] for r in read_jsonl(paths["errors"]))
        return Totals(counts, dict(kinds), len(self.retried), len(self.journal.resumed.done))

    def mark_complete(self) -> None:
        self.journal.mark_complete()
        self.journal.close()
        if self.writer is not None:
            self.writer.remove_parts()

    def records(self, name: str) -> Iterator[dict]:
        return iter_records(self.dir, self.kept_file, name)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.journal.close()


class Sharded:
    """Shards and their manifest (data/shards.py). A partial shard is
    flushed every ``FLUSH_EVERY_S`` too, so that a crash costs at most that
    much work; ``add_entry`` commits shards other processes wrote (Ray)."""

    FLUSH_EVERY_S = 60.0

    def __init__(self, export_dir: Path, fmt: str, shard_bytes: int, settings: dict, restart: bool,
                 retry_kinds: frozenset[str] | None, kept: str = "kept"):
        self.manifest = Manifest(export_dir, settings, restart=restart, kept=kept)
        self.retried: set[int] = set()
        resumed = self.done_count
        if retry_kinds and any(r["kind"] in retry_kinds for r in self.manifest.records("errors")):
            self.retried = self.manifest.drop_errors(retry_kinds)
        self.complete = self.manifest.complete
        self.resumed = resumed
        self.writer = ShardWriter(export_dir, fmt, shard_bytes, kept=kept)
        self._flushed = time.monotonic()

    @property
    def done(self) -> set[int]:
        return {i for a, b in self.manifest.done_ranges() for i in range(a, b)}

    def done_ranges(self) -> list[tuple[int, int]]:
        return self.manifest.done_ranges()

    @property
    def done_count(self) -> int:
        return sum(b - a for a, b in self.manifest.done_ranges())

    def write(self, outcome: SampleOutcome) -> None:
        entry = self.writer.add(outcome)
        if entry is not None:
            self.add_entry(entry)

    def add_entry(self, entry: ShardEntry) -> None:
        self.manifest.commit(entry)
        self._flushed = time.monotonic()

    def commit(self) -> None:
        if time.monotonic() - self._flushed >= self.FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        entry = self.writer.flush()
        if entry is not None:
            self.add_entry(entry)
        self._flushed = time.monotonic()

    def finish(self) -> Totals:
        self.flush()
        self.manifest.compact(self.writer.shard_bytes)
        counts = {name: sum(e.rows.get(name, 0) for e in self.manifest.entries) for name in ("kept", "dropped", "errors")}
        kinds = Counter(r["kind"] for r in self.manifest.records("errors"))
        files = {name: sum(name in e.files for e in self.manifest.entries) for name in OUTPUTS}
        return Totals(counts, dict(kinds), len(self.retried), self.resumed, {"shards": files})

    def mark_complete(self) -> None:
        self.manifest.mark_complete()
        self.manifest.close()

    def records(self, name: str) -> Iterator[dict]:
        return self.manifest.records(name)

    def close(self) -> None:
        self.manifest.close()
