"""Shard sizes against Data-Juicer's rule, on many cheap rows, as a user runs it.

    python bench/bench_shards.py --rows 200000 --shard-size 50000 --executor ray local
    python bench/bench_shards.py --rows 200000 --missing 0.1 --executor ray   # 10% rows whose video is missing

Each run is `textsieve run --export-shard-size N --export-type parquet` from the CLI
(the Ray executor starts a local instance). For each output the script reports the
number of shards, the number Data-Juicer's exporter would write for the same rows
(`ceil(Arrow bytes / export_shard_size)`), and the Arrow size of the shards but the last
(min, median, max, as multiples of the size asked for), plus wall time and the peak RSS of
the whole process tree. Sizes are read with pyarrow alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from bench_dj import timed  # wall and peak RSS of the process tree


def make_rows(path: Path, rows: int, missing: float) -> None:
    every = round(1 / missing) if missing else 0
    with open(path, "w") as f:
        for i in range(rows):
            videos = [f"gone/{i}.mp4"] if every and i % every == 0 else []
            f.write(json.dumps({"id": i, "text": "a caption of some length " * (1 + i % 7), "videos": videos}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--shard-size", type=int, default=50_000)
    ap.add_argument("--missing", type=float, default=0.0)
    ap.add_argument("--executor", nargs="+", default=["ray", "local"])
    ap.add_argument("--work", default="bench/work/shards")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"rows{args.rows}_m{args.missing}.jsonl"
    if not data.exists():
        make_rows(data, args.rows, args.missing)
    print(f"### Shard sizes ({date.today()}, {platform.node()}, {os.cpu_count()} cores)")
    print(f"Command: `python bench/bench_shards.py --rows {args.rows} --shard-size {args.shard_size} "
          f"--missing {args.missing} --executor {' '.join(args.executor)}`\n")
    print("| executor | wall | rows/s | peak RSS | output | shards | Data-Juicer's count | size of all but the last, x asked (min / median / max) |")
    print("|---|---|---|---|---|---|---|---|")
    for executor in args.executor:
        out = work / f"out_{executor}"
        wall, peak = timed([sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(data), "--export", str(out),
                          "--executor", executor, "--export-shard-size", str(args.shard_size),
                          "--export-type", "parquet", "--restart"], None, work / f"{executor}.log")
        for output in ("kept", "stats", "errors"):
            files = sorted((out / output).glob("*"))
            if not files:
                continue
            if output == "errors":
                import pyarrow.json as pajson

                sizes = [pajson.read_json(f).nbytes for f in files]
            else:
                sizes = [pq.read_table(f).nbytes for f in files]
            body = sizes[:-1] if len(sizes) > 1 else sizes  # in name order: the compacted shards are numbered
            ratio = [s / args.shard_size for s in body]
            print(f"| {executor} | {wall:.0f} s | {args.rows / wall:.0f} | {peak / 2**30:.2f} GiB | {output} | {len(files)} | "
                  f"{math.ceil(sum(sizes) / args.shard_size)} | {min(ratio):.2f} / {statistics.median(ratio):.2f} / {max(ratio):.2f} |")


if __name__ == "__main__":
    main()
