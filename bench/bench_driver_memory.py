"""The Ray driver's memory does not grow with the dataset.

    python bench/bench_driver_memory.py [--rows 100000 1000000] [--work DIR]
    python bench/bench_driver_memory.py --rows 20000 200000 --missing 0.1   # every 10th row's video missing

For each row count it writes a JSON-lines dataset of samples without videos
(each row a short caption, as metadata-only rows of a real dataset), then
runs `textsieve run --executor ray` on a local cluster with sharded outputs
(`--export-shard-size 8000000`: the workers write the shards) and samples
the driver process's resident memory every 0.1 s (the `textsieve` process
alone: Ray's own processes and the workers are not the driver). It prints
the peak for each size: flat means nothing proportional to the dataset is
held by the driver.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psutil


def dataset(folder: Path, rows: int, missing: float = 0.0) -> Path:
    """Caption rows; with ``missing``, that share of them names a video that is not there (an
    error that is settled before any decoding, as the cheap rows are)."""
    every = round(1 / missing) if missing else 0
    path = folder / (f"rows-{rows}.jsonl" if not every else f"rows-{rows}-missing-{every}.jsonl")
    if not path.exists():
        with open(path, "w") as f:
            for i in range(rows):
                row = {"id": i, "text": f"caption number {i} of a clip without videos"}
                if every and i % every == 0:
                    row["videos"] = [f"gone/{i}.mp4"]
                f.write(json.dumps(row) + "\n")
    return path


def peak_rss(command: list[str]) -> tuple[int, float, str]:
    """Run ``command``; its own peak RSS (sampled), wall seconds and stderr tail."""
    t0 = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    me = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, me.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.1)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return peak, time.monotonic() - t0, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("bench-driver"))
    parser.add_argument("--missing", type=float, default=0.0, help="share of rows whose video is missing")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# Ray driver memory, {date.today()}, {platform.machine()}, {os.cpu_count()} cores\n")
    print("| rows | driver peak RSS | wall | samples/s |")
    print("|---|---|---|---|")
    for rows in args.rows:
        data = dataset(args.work, rows, args.missing)
        command = [sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(data), "--export",
                   str(args.work / f"out-{rows}"), "--executor", "ray", "--detector", "ppocr",
                   "--export-shard-size", "8000000", "--restart"]
        peak, wall, _ = peak_rss(command)
        summary = json.loads((args.work / f"out-{rows}" / "summary.json").read_text())
        assert summary["counts"]["adds_up"] and summary["counts"]["input"] == rows
        print(f"| {rows:,} | {peak / 2**20:.0f} MiB | {wall:.0f} s | {rows / wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
