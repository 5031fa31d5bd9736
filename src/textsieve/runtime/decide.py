"""``textsieve decide``: new thresholds on a finished run's saved stats.

Reads stats.jsonl with kept.jsonl and dropped.jsonl (all in sample order),
applies the new range to the saved per-video ratios, and rewrites the three
files and the summary. No decoding, no detection: seconds for millions of
samples, in bounded memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from ..data.export import dumps, output_paths, read_jsonl, write_json_atomic
from ..data.journal import JOURNAL, read_settings, replace_settings
from ..data.lock import FolderLock
from ..data.shards import MANIFEST
from ..errors import ConfigError
from ..filter import keep_with_verdicts
from ..video.pieces import video_decision
from .collector import write_segments


def redecide(export_dir: Path, min_ratio: float | None, max_ratio: float | None, any_or_all: str | None,
             kept_file: str | None = None) -> dict:
    lock = FolderLock(export_dir).acquire() if export_dir.is_dir() else None
    try:
        return _redecide(export_dir, min_ratio, max_ratio, any_or_all, kept_file)
    finally:
        if lock is not None:
            lock.release()


def _redecide(export_dir: Path, min_ratio: float | None, max_ratio: float | None, any_or_all: str | None,
              kept_file: str | None) -> dict:
    if (export_dir / MANIFEST).exists():
        raise ConfigError(f"{export_dir} holds shards (export_shard_size): textsieve decide rewrites single-file outputs; "
                          "run again with the new thresholds instead (the journal is per shard)")
    summary_path = export_dir / "summary.json"
    if not summary_path.exists():
        raise ConfigError(f"{export_dir} has no summary.json: only a finished run can be re-decided")
    summary = json.loads(summary_path.read_text())
    op = summary["config"]["filter"]
    op["min_area_ratio"] = op["min_area_ratio"] if min_ratio is None else min_ratio
    op["max_area_ratio"] = op["max_area_ratio"] if max_ratio is None else max_ratio
    op["any_or_all"] = any_or_all or op["any_or_all"]
    if not 0 <= op["min_area_ratio"] <= op["max_area_ratio"] <= 1:
        raise ConfigError("need 0 <= min_area_ratio <= max_area_ratio <= 1")
    kept_path = Path(kept_file) if kept_file else Path(summary["config"]["export_path"])
    paths = output_paths(export_dir, kept_path if kept_path.suffix == ".jsonl" else export_dir / "kept.jsonl")
    old = {"kept": read_jsonl(paths["kept"]), "dropped": read_jsonl(paths["dropped"])}
    tmp = {name: paths[name].with_name(paths[name].name + ".deciding") for name in ("kept", "dropped", "stats")}
    counts = {"kept": 0, "dropped": 0}
    with open(tmp["kept"], "w", encoding="utf-8") as kept, open(tmp["dropped"], "w", encoding="utf-8") as dropped, \
            open(tmp["stats"], "w", encoding="utf-8") as stats:
        out = {"kept": kept, "dropped": dropped}
        for record in read_jsonl(paths["stats"]):
            sample = _next(old[record["status"]], record["index"])
            verdicts = [redecide_pieces(v, op) for v in record["videos"]]
            entries = record.get("entry_videos") or []
            status = "kept" if keep_with_verdicts(record["video_ocr_area_ratio"], [verdicts[i] for i in entries]
                                                  or [None] * len(record["video_ocr_area_ratio"]),
                                                  op["min_area_ratio"], op["max_area_ratio"], op["any_or_all"],
                                                  op.get("reversed_range", False)) else "dropped"
            record["status"] = status
            counts[status] += 1
            out[status].write(dumps(sample) + "\n")
            stats.write(dumps(record) + "\n")
    for name, path in tmp.items():
        os.replace(path, paths[name])
    summary["counts"].update(counts)
    summary["counts"]["adds_up"] = summary["counts"]["input"] == counts["kept"] + counts["dropped"] + summary["counts"]["error"]
    summary.setdefault("redecided", []).append({k: op[k] for k in ("min_area_ratio", "max_area_ratio", "any_or_all")})
    write_json_atomic(summary_path, summary)
    if op.get("segment_s") is not None:
        write_segments(read_jsonl(paths["stats"]), export_dir / "segments.jsonl")
    # the folder's run now holds these thresholds: a later `run` compares
    # its settings with them (and resumes, refuses or reports it finished)
    if not (export_dir / JOURNAL).exists():
        return summary
    settings = read_settings(export_dir)
    settings["filter"].update({k: op[k] for k in ("min_area_ratio", "max_area_ratio", "any_or_all")})
    replace_settings(export_dir, settings)
    return summary


def redecide_pieces(video: dict, op: dict) -> bool | None:
    """A video judged in pieces: each piece's keep at the new thresholds; the
    video's own verdict under segment_aggregate any/all (None: its ratio decides)."""
    if "pieces" not in video:
        return None
    for piece in video["pieces"]:
        piece["keep"] = (op["min_area_ratio"] <= piece["ratio"] <= op["max_area_ratio"]) != op.get("reversed_range", False)
    _, keep = video_decision([p["ratio"] for p in video["pieces"]], [p["keep"] for p in video["pieces"]],
                             op.get("segment_aggregate", "mean"))
    if keep is not None:
        video["keep"] = keep
    return keep


def _next(lines: Iterator[dict], index: int) -> dict:
    sample = next(lines, None)
    if sample is None:
        raise ConfigError(f"stats.jsonl names sample {index}, but the kept/dropped files ended: the export folder is inconsistent")
    return sample
