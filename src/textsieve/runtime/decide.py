"""``textsieve decide``: new thresholds on a finished run's saved stats.

Reads stats.jsonl with kept.jsonl and dropped.jsonl (all in sample order),
applies the new range to the saved per-video ratios, and rewrites the three
files and the summary. No decoding, no detection: seconds for millions of
samples, in bounded memory. The stats must cover the run (each judged
sample once, as many as the summary counted, none also an error): else the
decide is refused and nothing is written, since re-deciding short stats
would silently drop the samples they lost.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from ..config import OcrFilter
from ..data.atomic import replacing
from ..data.dj_files import write_segments
from ..data.export import dumps, output_paths, read_jsonl
from ..data.journal import JOURNAL, read_settings, replace_settings
from ..data.lock import FolderLock
from ..data.shards import MANIFEST
from ..errors import ConfigError
from ..judging import in_range, keep_with_verdicts, kinds_within
from ..kind_rules import KINDS
from ..report.summary import Counts, Redecision, RunSummary
from ..video.pieces import video_decision


def redecide(export_dir: Path, min_ratio: float | None, max_ratio: float | None, any_or_all: str | None,
             kept_file: str | None = None, kind_limits: dict[str, float] | None = None) -> RunSummary:
    """Re-decide a finished run at new thresholds (``kind_limits``: new
    per-kind maxima, {"subtitle": 0.0, ...}, for a run that judged kinds); a
    ConfigError (nothing written, nothing created) for a folder that is not a
    finished run, or whose stats do not cover the run's samples."""
    summary = _finished_run(export_dir)  # before the lock: a folder that is not a run gets no lock file
    lock = FolderLock(export_dir).acquire()
    try:
        return _redecide(export_dir, summary, min_ratio, max_ratio, any_or_all, kept_file, kind_limits or {})
    finally:
        lock.release()


def _finished_run(export_dir: Path) -> RunSummary:
    if (export_dir / MANIFEST).exists():
        raise ConfigError(f"{export_dir} holds shards (export_shard_size): textsieve decide rewrites single-file outputs; "
                          "run again with the new thresholds instead (the journal is per shard)")
    summary_path = export_dir / "summary.json"
    if not summary_path.is_file():
        raise ConfigError(f"{export_dir} has no summary.json: only a finished run can be re-decided "
                          "(give the export folder of a `textsieve run` that ended)")
    summary = RunSummary.load(summary_path)  # a ConfigError naming the file and the field, if not
    if not isinstance(summary.config.get("filter"), dict):
        raise ConfigError(f"{summary_path} is not the summary of a finished run (config.filter is missing): run "
                          "the run again to write it")
    return summary


def _redecide(export_dir: Path, summary: RunSummary, min_ratio: float | None, max_ratio: float | None,
              any_or_all: str | None, kept_file: str | None, kind_limits: dict[str, float]) -> RunSummary:
    summary_path = export_dir / "summary.json"
    op = dict(summary.op)
    op["min_area_ratio"] = op["min_area_ratio"] if min_ratio is None else min_ratio
    op["max_area_ratio"] = op["max_area_ratio"] if max_ratio is None else max_ratio
    op["any_or_all"] = any_or_all or op["any_or_all"]
    if not 0 <= op["min_area_ratio"] <= op["max_area_ratio"] <= 1:
        raise ConfigError("need 0 <= min_area_ratio <= max_area_ratio <= 1")
    if kind_limits and not OcrFilter.model_validate({k: v for k, v in op.items() if k in OcrFilter.model_fields}).kinds:
        raise ConfigError(f"{summary_path}: this run did not judge the kinds of text, so its stats hold no kind "
                          "ratios to re-decide by: run it again with a kind key (max_subtitle_ratio, ...; "
                          "docs/kinds.md)")
    for kind, limit in kind_limits.items():
        if not 0 <= limit <= 1:
            raise ConfigError(f"max_{kind}_ratio {limit}: need a ratio between 0 and 1")
        op[f"max_{kind}_ratio"] = limit
    # the kept file beside the summary (as Data-Juicer resolves outputs): a
    # copied or moved folder re-decides its own files, not the original's
    named = Path(summary.config.get("export_path") or "")
    kept_path = Path(kept_file) if kept_file else export_dir / named.name
    paths = output_paths(export_dir, kept_path if kept_path.suffix == ".jsonl" else export_dir / "kept.jsonl")
    for path in paths.values():
        if not path.is_file():
            raise ConfigError(f"{path} is missing: only a finished run can be re-decided (run the same command to "
                              "finish it, or pass --kept-file for a .jsonl export_path)")
    # a refused decide writes nothing: each temporary file goes, and the run's files stay
    with ExitStack() as files:
        tmp = {name: files.enter_context(replacing(paths[name], paths[name].with_name(paths[name].name + ".deciding")))
               for name in ("kept", "dropped", "stats")}
        counts = _write_decided(paths, tmp, summary, op)
    decision = Redecision(op["min_area_ratio"], op["max_area_ratio"], op["any_or_all"],
                          _kind_limits(op) or None)
    summary = replace(summary, config={**summary.config, "filter": op},
                      counts=Counts.of(summary.counts.input, counts["kept"], counts["dropped"], summary.counts.error),
                      redecided=(*(summary.redecided or ()), decision))
    summary.write(summary_path)
    if op.get("segment_s") is not None:
        write_segments(read_jsonl(paths["stats"]), export_dir / "segments.jsonl")
    # the folder's run now holds these thresholds: a later `run` compares
    # its settings with them (and resumes, refuses or reports it finished)
    if not (export_dir / JOURNAL).exists():
        return summary
    settings = read_settings(export_dir)
    settings["filter"].update({k: op[k] for k in ("min_area_ratio", "max_area_ratio", "any_or_all")})
    settings["filter"].update({f"max_{kind}_ratio": limit for kind, limit in kind_limits.items()})
    replace_settings(export_dir, settings)
    return summary


def _write_decided(paths: dict[str, Path], tmp: dict[str, Path], summary: RunSummary, op: dict) -> dict[str, int]:
    """Re-decide every stats record into the ``tmp`` files, checking as it
    goes that the stats cover the run: each judged sample once, in order,
    none also among the errors, as many as the summary counted, every kept
    and dropped line paired. In bounded memory: the finished files are in
    sample order, so the errors are merged in, not held."""
    counts = {"kept": 0, "dropped": 0}
    old = {"kept": _objects(paths["kept"]), "dropped": _objects(paths["dropped"])}
    errors = _indices(paths["errors"])
    error = next(errors, None)
    n_errors = error is not None
    previous = -1
    with open(tmp["kept"], "w", encoding="utf-8") as kept, open(tmp["dropped"], "w", encoding="utf-8") as dropped, \
            open(tmp["stats"], "w", encoding="utf-8") as stats:
        out = {"kept": kept, "dropped": dropped}
        for line, record in _objects(paths["stats"]):
            where = f"{paths['stats']} line {line}"
            index, status = record.get("index"), record.get("status")
            if not isinstance(index, int) or status not in out:
                raise ConfigError(f"{where} is not a stats record (an integer index and a status kept or dropped): "
                                  f"the outputs were left as they were; {_WAY_OUT}")
            if index <= previous:
                raise ConfigError(f"{where}: sample {index} after sample {previous}: a finished run lists each "
                                  f"sample once, in order; the outputs were left as they were; {_WAY_OUT}")
            while error is not None and error[1] < index:
                error = next(errors, None)
                n_errors += error is not None
            if error is not None and error[1] == index:
                raise ConfigError(f"{where}: sample {index} is also in {paths['errors']} line {error[0]}: the "
                                  f"outputs were left as they were; {_WAY_OUT}")
            previous = index
            _, sample = _next(old[status], paths[status], index)
            try:
                new = _decision(record, op)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise ConfigError(f"{where}: sample {index}'s ratios cannot be read ({type(exc).__name__}: {exc}): "
                                  f"the outputs were left as they were; {_WAY_OUT}") from None
            record["status"] = new
            counts[new] += 1
            out[new].write(dumps(sample) + "\n")
            stats.write(dumps(record) + "\n")
    n_errors += sum(1 for _ in errors)
    judged = summary.counts.kept + summary.counts.dropped
    if counts["kept"] + counts["dropped"] != judged or n_errors != summary.counts.error:
        fewer = counts["kept"] + counts["dropped"] + n_errors < judged + summary.counts.error
        raise ConfigError(f"{paths['stats']} holds {counts['kept'] + counts['dropped']} judged samples and "
                          f"{paths['errors']} {n_errors} errors, but the run counted {judged} and "
                          f"{summary.counts.error} (summary.json): samples are {'missing' if fewer else 'doubled'}, "
                          f"so nothing was re-decided and the outputs were left as they were; {_WAY_OUT}")
    for name, lines in old.items():
        extra = next(lines, None)
        if extra is not None:
            raise ConfigError(f"{paths[name]} line {extra[0]} has no record in {paths['stats']}: the outputs were "
                              f"left as they were; {_WAY_OUT}")
    return counts


def _decision(record: dict, op: dict) -> str:
    """A stats record's status at ``op``'s thresholds, as a run decides it
    (steps.judge): a video past a kind's maximum fails whatever its ratio;
    else its pieces' verdict, or its ratio."""
    limits = _kind_limits(op)
    verdicts = [redecide_pieces(v, op) if kinds_within(v.get("kind_ratios"), limits) else False
                for v in record["videos"]]
    entries = record.get("entry_videos") or []
    keep = keep_with_verdicts(record["video_ocr_area_ratio"],
                              [verdicts[i] for i in entries] or [None] * len(record["video_ocr_area_ratio"]),
                              op["min_area_ratio"], op["max_area_ratio"], op["any_or_all"],
                              op.get("reversed_range", False))
    return "kept" if keep else "dropped"


def _kind_limits(op: dict) -> dict[str, float]:
    return {kind: op[key] for kind in KINDS if (key := f"max_{kind}_ratio") in op and op[key] is not None}


_WAY_OUT = ("restore the file from a copy, or judge the dataset again with `textsieve run ... --restart`")


def _objects(path: Path) -> Iterator[tuple[int, dict]]:
    """A JSON-lines file's objects with their 1-based line numbers; a line
    that is not a JSON object refuses the decide, naming it."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path} line {number} is not valid JSON ({exc}): the outputs were left as they "
                                  f"were; {_WAY_OUT}") from None
            if not isinstance(obj, dict):
                raise ConfigError(f"{path} line {number} is a {type(obj).__name__}, not a JSON object: the outputs "
                                  f"were left as they were; {_WAY_OUT}")
            yield number, obj


def _indices(path: Path) -> Iterator[tuple[int, int]]:
    """The errors file's (line, sample index), checked to be in sample order."""
    previous = -1
    for number, record in _objects(path):
        index = record.get("index")
        if not isinstance(index, int) or index <= previous:
            raise ConfigError(f"{path} line {number} is not the next error record (an integer index after "
                              f"{previous}): the outputs were left as they were; {_WAY_OUT}")
        previous = index
        yield number, index


def redecide_pieces(video: dict, op: dict) -> bool | None:
    """A video judged in pieces: each piece's keep at the new thresholds; the
    video's own verdict under segment_aggregate any/all (None: its ratio decides)."""
    if "pieces" not in video:
        return None
    for piece in video["pieces"]:
        piece["keep"] = in_range(piece["ratio"], op["min_area_ratio"], op["max_area_ratio"],
                                 op.get("reversed_range", False))
    _, keep = video_decision([p["ratio"] for p in video["pieces"]], [p["keep"] for p in video["pieces"]],
                             op.get("segment_aggregate", "mean"))
    if keep is not None:
        video["keep"] = keep
    return keep


def _next(lines: Iterator[tuple[int, dict]], path: Path, index: int) -> tuple[int, dict]:
    sample = next(lines, None)
    if sample is None:
        raise ConfigError(f"stats.jsonl names sample {index}, but {path} ended: the export folder is inconsistent, so "
                          f"the outputs were left as they were; {_WAY_OUT}")
    return sample
