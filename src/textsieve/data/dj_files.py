"""Files written from a finished run's outputs for the tools downstream:
Data-Juicer's own layout for an ``export_path`` naming a file, and
``segments.jsonl`` for a run that judged long videos in pieces. Both are
rewritten whole and atomically, from the sorted outputs, by the run's end
and by ``textsieve decide``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ..judging import STATS_FIELD
from ..video.pieces import merge_kept
from .atomic import replacing
from .export import dumps
from .parquet import write_records

# rows per row group of a single-file .parquet export: what is held in memory at once
PARQUET_CHUNK_ROWS = 100_000


def write_segments(stats: Iterator[dict], path: Path) -> None:
    """``segments.jsonl``: per video judged in pieces, the time ranges that
    can be kept (adjacent kept pieces merged), ready to cut with FFmpeg or a
    Data-Juicer split mapper."""
    with replacing(path, path.with_name(path.name + ".part")) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for record in stats:
            for video in record["videos"]:
                if "pieces" in video:
                    spans = [(p["start"], p["end"], p["keep"]) for p in video["pieces"]]
                    out.write(dumps({"index": record["index"], "video": video["video"],
                                     "segments": merge_kept(spans)}) + "\n")


def write_dj_layout(export_file: Path, kept: Path, keep_stats_in_res_ds: bool) -> Path:
    """What Data-Juicer writes for an export_path naming a file: the kept
    samples' stats in ``<stem>_stats.jsonl`` (one ``{"__dj__stats__": ...}``
    per kept sample, in order), the stats left in the kept samples only with
    ``keep_stats_in_res_ds``, and a ``.parquet`` export_path as Parquet.
    ``kept`` is the run's sorted kept file; returns the stats file's path."""
    stats_path = export_file.with_name(f"{export_file.stem}_stats.jsonl")
    with replacing(kept, kept.with_name(kept.name + ".dj")) as stripped, open(kept, encoding="utf-8") as src, \
            open(stats_path, "w", encoding="utf-8") as stats, open(stripped, "w", encoding="utf-8") as out:
        for line in src:
            sample = json.loads(line)
            stats.write(dumps({STATS_FIELD: sample.get(STATS_FIELD, {})}) + "\n")
            if not keep_stats_in_res_ds:
                sample.pop(STATS_FIELD, None)
            out.write(dumps(sample) + "\n")
    if export_file.suffix == ".parquet":
        # typed by the shards' rule (data/parquet.py): a field that is 1 in one
        # row and "x" in another must not fail the run after all detection
        write_records(export_file, lambda: _chunks(kept))
        kept.unlink()
    return stats_path


def _chunks(path: Path, rows: int = PARQUET_CHUNK_ROWS) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            chunk.append(json.loads(line))
            if len(chunk) == rows:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
