"""The export folder: kept / dropped / errors / stats as JSON lines, and
summary.json.

During a run each output is a ``*.part`` file of ``<index>\\t<json>`` lines,
appended in completion order. A commit flushes them and records their sizes
in the journal (:mod:`textsieve.data.journal`); resuming truncates them back
to the last commit, so a line is never lost or doubled. Finishing sorts each
part by sample index (chunked external merge: bounded memory) into its final
name, so outputs are in input order whatever the parallelism or restarts.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO, Any, Iterator

from ..judging import with_stats
from ..outcome import SampleOutcome
from .atomic import replacing, write_atomic
from .shards import MANIFEST, read_manifest, read_shard
from .strict_json import dumps  # every output's encoder (strict JSON); imported from here too

PART = ".part"
OUTPUTS = ("kept", "dropped", "errors", "stats")
SORT_CHUNK_LINES = 200_000


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, dumps(obj, indent=2, ascii=True) + "\n", path.with_name(path.name + PART))


def output_paths(export_dir: Path, kept_file: Path) -> dict[str, Path]:
    return {
        "kept": Path(kept_file),
        "dropped": export_dir / "dropped.jsonl",
        "errors": export_dir / "errors.jsonl",
        "stats": export_dir / "stats.jsonl",
    }


def part_of(path: Path) -> Path:
    return path.with_name(path.name + PART)


class ExportWriter:
    def __init__(self, export_dir: Path, kept_file: Path, offsets: dict[str, int] | None = None):
        """Open the part files; ``offsets`` (from the journal) truncates them
        to the last committed state, else they start empty."""
        self.dir = Path(export_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.paths = output_paths(self.dir, Path(kept_file))
        self._files: dict[str, IO[bytes]] = {}
        for name, path in self.paths.items():
            f = open(part_of(path), "a+b")
            f.truncate((offsets or {}).get(name, 0))
            f.seek(0, os.SEEK_END)
            self._files[name] = f

    def write(self, outcome: SampleOutcome) -> None:
        def put(name: str, obj: Any) -> None:
            self._files[name].write(f"{outcome.index}\t{dumps(obj)}\n".encode("utf-8"))

        if outcome.status == "error":
            put("errors", outcome.error_record())
            return
        put("kept" if outcome.status == "kept" else "dropped", with_stats(outcome.sample, outcome.ratios))
        put("stats", outcome.stats_record())

    def commit(self) -> dict[str, int]:
        """Make what was written durable; returns the part files' sizes."""
        sizes = {}
        for name, f in self._files.items():
            f.flush()
            os.fsync(f.fileno())
            sizes[name] = f.tell()
        return sizes

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def finalize(self) -> None:
        """Sort every part into its final file by sample index. The parts
        stay until :meth:`remove_parts`, so a crash here loses nothing."""
        self.commit()
        self.close()
        for path in self.paths.values():
            sort_part(part_of(path), path)

    def remove_parts(self) -> None:
        for path in self.paths.values():
            part_of(path).unlink(missing_ok=True)


def _indexed(lines: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    for line in lines:
        head, _, body = line.partition(b"\t")
        yield int(head), body


def sort_part(part: Path, final: Path) -> None:
    """Write ``part``'s lines to ``final`` ordered by index, without the index,
    in bounded memory: sorted chunks on disk, then a k-way merge."""
    chunks: list[Path] = []
    with open(part, "rb") as src, tempfile.TemporaryDirectory(dir=final.parent) as tmp:
        while True:
            # islice: a short part costs its lines, not SORT_CHUNK_LINES calls (1.3 s a run)
            block = sorted(_indexed(itertools.islice(src, SORT_CHUNK_LINES)), key=lambda t: t[0])
            if not block:
                break
            chunk = Path(tmp) / f"{len(chunks)}.chunk"
            with open(chunk, "wb") as out:
                out.writelines(b"%d\t%s" % (i, body) for i, body in block)
            chunks.append(chunk)
        files = [open(c, "rb") for c in chunks]
        try:
            with replacing(final, final.with_name(final.name + ".sorting")) as tmp_final, open(tmp_final, "wb") as out:
                for _, body in heapq.merge(*(_indexed(f) for f in files), key=lambda t: t[0]):
                    out.write(body)
        finally:
            for f in files:
                f.close()


def read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _whole(line: bytes, done: set[int]) -> bool:
    """Whether a part file's line is one that a commit wrote: ``<index>\\t``
    and a JSON object, ended by a newline, of a sample the journal lists as
    done. (A JSON writer escapes NUL, so a NUL byte is damage: a file grown
    or zero-filled by a crash.) Cheap enough for every line of a resume."""
    head, tab, body = line.partition(b"\t")
    return (bool(tab) and head.isdigit() and body.startswith(b"{") and body.endswith(b"}\n")
            and b"\0" not in body and int(head) in done)


def _whole_prefix(part: Path, limit: int, done: set[int]) -> tuple[int, list[int]]:
    """How many bytes of ``part``, up to ``limit``, are whole lines (the
    last consistent offset), and their indices in order."""
    end, indices = 0, []
    if not part.exists():
        return 0, indices
    with open(part, "rb") as f:
        for line in f:
            if end + len(line) > limit or not _whole(line, done):
                break
            end += len(line)
            indices.append(int(line.partition(b"\t")[0]))
    return end, indices


def check_parts(export_dir: Path, kept_file: Path, done: set[int], offsets: dict[str, int]) -> \
        tuple[set[int], dict[str, int], dict[str, tuple[int, int]]]:
    """Check the part files against the journal before a resume: each must
    hold whole lines up to the offset its last commit recorded. A part cut
    short (or damaged: NUL bytes, a torn line) lost committed records;
    truncating it "back" to the offset would grow it with NULs and the
    finished files would hold them. So the damaged parts are cut to their
    last whole line, every line of a sample whose records are no longer all
    there (kept or dropped with its stats, or its error) is taken out of
    every part, and those samples leave the done set, to be judged again:
    no sample lost, none doubled. Returns the done set, the part sizes and,
    per damaged part, where its whole lines end and the offset the journal
    expected (empty when all is whole: the common case, which reads each
    part once and changes nothing)."""
    paths = output_paths(Path(export_dir), Path(kept_file))
    prefixes = {name: _whole_prefix(part_of(path), offsets.get(name, 0), done) for name, path in paths.items()}
    damaged = {name: (end, offsets.get(name, 0)) for name, (end, _) in prefixes.items() if end != offsets.get(name, 0)}
    if not damaged:
        return done, offsets, {}
    judged = Counter(i for name in ("kept", "dropped") for i in prefixes[name][1])
    stats, errors = Counter(prefixes["stats"][1]), Counter(prefixes["errors"][1])
    whole = {i for i in done if (judged[i] == stats[i] == 1 and not errors[i])
             or (errors[i] == 1 and not judged[i] and not stats[i])}
    for name, path in paths.items():
        part = part_of(path)
        with replacing(part, part.with_name(part.name + ".check")) as tmp, open(part, "a+b") as src, \
                open(tmp, "wb") as out:
            src.seek(0)
            for _, line in zip(prefixes[name][1], iter(src.readline, b"")):
                if int(line.partition(b"\t")[0]) in whole:
                    out.write(line)
    return whole, {name: part_of(path).stat().st_size for name, path in paths.items()}, damaged


def reopen_for_retry(export_dir: Path, kept_file: Path, done: set[int], offsets: dict[str, int], complete: bool,
                     retry_kinds: frozenset[str], retried_before: frozenset[int] = frozenset()) -> \
        tuple[set[int], dict[str, int], set[int]]:
    """Take the samples whose error kind is in ``retry_kinds`` back out of a
    run, so that resuming judges them again, exactly once.

    A finished run's final files become part files again (kept and dropped
    lines are paired with their stats records, which carry the index, as
    ``textsieve decide`` pairs them); an unfinished run's parts are cut to
    the last commit. The retried error lines are removed from the errors
    part; ``retried_before`` (a retry that was stopped and is resumed) are
    not taken back again: each is retried once. Returns the new done set,
    part sizes and the retried indices."""
    paths = output_paths(Path(export_dir), Path(kept_file))
    if complete:
        done, offsets = _unfinalize(paths)
    for name, path in paths.items():
        with open(part_of(path), "a+b") as f:
            f.truncate(offsets.get(name, 0))
    retried: set[int] = set()
    errors = part_of(paths["errors"])
    with replacing(errors, errors.with_name(errors.name + ".retry")) as tmp, open(errors, "rb") as src, \
            open(tmp, "wb") as out:
        for index, body in _indexed(src):
            if json.loads(body)["kind"] in retry_kinds and index not in retried_before:
                retried.add(index)
            else:
                out.write(b"%d\t%s" % (index, body))
    offsets = {name: part_of(path).stat().st_size for name, path in paths.items()}
    for path in paths.values():
        path.unlink(missing_ok=True)  # final files exist only for a finished run
    return set(done) - retried, offsets, retried


def _unfinalize(paths: dict[str, Path]) -> tuple[set[int], dict[str, int]]:
    done: set[int] = set()
    with open(part_of(paths["kept"]), "wb") as kept_part, open(part_of(paths["dropped"]), "wb") as dropped_part, \
            open(part_of(paths["stats"]), "wb") as stats_part, open(part_of(paths["errors"]), "wb") as errors_part, \
            open(paths["kept"], "rb") as kept, open(paths["dropped"], "rb") as dropped:
        parts = {"kept": (kept_part, kept), "dropped": (dropped_part, dropped)}
        with open(paths["stats"], "rb") as stats:
            for line in stats:
                if not line.strip():
                    continue
                record = json.loads(line)
                index = record["index"]
                part, final = parts[record["status"]]
                sample = final.readline()
                if not sample:
                    raise ValueError(f"{paths['stats']} names sample {index}, but {final.name} ended: the folder is inconsistent")
                part.write(b"%d\t%s" % (index, sample))
                stats_part.write(b"%d\t%s" % (index, line))
                done.add(index)
        with open(paths["errors"], "rb") as errors:
            for line in errors:
                if line.strip():
                    index = json.loads(line)["index"]
                    errors_part.write(b"%d\t%s" % (index, line))
                    done.add(index)
    return done, {name: part_of(path).stat().st_size for name, path in paths.items()}


def iter_records(export_dir: Path, kept_file: Path, name: str) -> Iterator[dict]:
    """One output's records (``kept``, ``dropped``, ``errors`` or ``stats``)
    of a finished run, or of a running or stopped one (its part file, in
    completion order, a torn last line skipped), single files or shards:
    what readers such as ``textsieve report`` see while a run goes on."""
    if (Path(export_dir) / MANIFEST).exists():
        for entry in read_manifest(Path(export_dir))[1]:
            if name in entry.files:
                yield from read_shard(Path(export_dir) / entry.files[name])
        return
    path = output_paths(Path(export_dir), Path(kept_file))[name]
    if path.exists():
        yield from read_jsonl(path)
        return
    part = part_of(path)
    if not part.exists():
        return
    with open(part, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # being written, or torn by a crash
            yield json.loads(line.partition(b"\t")[2])
