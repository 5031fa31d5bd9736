"""CRAFT at low resolution as the cascade's fast stage (issue 25, candidate 1):
how far its ratios stray from CRAFT's on Data-Juicer's frames, and what that
costs and buys, on real folders, as a user runs textsieve.

    nice python bench/bench_lowres.py FOLDER [FOLDER ...] [--sides 480 320] [--work DIR]

For each folder (its videos, one sample each; folders are arguments, never
committed): `textsieve run` with `--detector craft` at native size (Data-
Juicer's ratios, the reference), with `--max-side S` for each S, and with
`--detector ppocr`. Printed (markdown): wall time and videos/s of each run
(in the same session, so as ratios they compare), decisions against native
CRAFT at `max_area_ratio` 0.02, 0.05 and 0.1, and how far each fast ratio
lies from CRAFT's: the largest |difference| and the share of videos whose
fast ratio lies within that distance of a threshold (what a margin wide
enough for these clips would send to CRAFT).
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

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi"}
THRESHOLDS = (0.02, 0.05, 0.1)


def dataset(folder: Path, work: Path) -> Path:
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    path = work / f"{folder.name}.jsonl"
    path.write_text("".join(json.dumps({"id": i, "videos": [str(v.resolve())]}) + "\n"
                            for i, v in enumerate(videos)))
    return path


def run(data: Path, export: Path, *flags: str) -> tuple[float, dict[str, float]]:
    """One whole run as a user starts it; its wall time and each video's ratio."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(data), "--export",
                           str(export), "--restart", *flags], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"textsieve run {' '.join(flags)} failed:\n{done.stderr[-2000:]}")
    ratios = {Path(v["video"]).name: v["ratio"] for line in (export / "stats.jsonl").read_text().splitlines()
              for v in json.loads(line)["videos"]}
    return wall, ratios


def compare(reference: dict[str, float], fast: dict[str, float]) -> tuple[list[str], float, list[str]]:
    both = sorted(set(reference) & set(fast))
    agree = [f"{sum((fast[v] <= t) == (reference[v] <= t) for v in both)}/{len(both)}" for t in THRESHOLDS]
    worst = max((abs(fast[v] - reference[v]) for v in both), default=0.0)
    # a margin of `worst` around each threshold: the videos it would send to CRAFT
    routed = [f"{sum(abs(fast[v] - t) <= worst for v in both) / max(1, len(both)):.0%}" for t in THRESHOLDS]
    return agree, worst, routed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--sides", nargs="+", type=int, default=[480, 320])
    parser.add_argument("--work", type=Path, default=Path("bench/work/lowres"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# CRAFT at low resolution against CRAFT native, {date.today()}, {platform.node()}, "
          f"{os.cpu_count()} cores\n")
    print("| folder | run | videos | wall | videos/s | vs craft | agree at 0.02 / 0.05 / 0.1 | largest abs diff | "
          "within it of 0.02 / 0.05 / 0.1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in args.folders:
        data = dataset(folder, args.work)
        runs = [("craft", ["--detector", "craft"])]
        runs += [(f"craft max_side {s}", ["--detector", "craft", "--max-side", str(s)]) for s in args.sides]
        runs += [("ppocr", ["--detector", "ppocr"])]
        results = {name: run(data, args.work / f"{folder.name}-{name.replace(' ', '-')}", *flags)
                   for name, flags in runs}
        base_wall, base = results["craft"]
        for name, (wall, ratios) in results.items():
            agree, worst, routed = compare(base, ratios)
            print(f"| {folder.name} | {name} | {len(ratios)} | {wall:.0f} s | {len(ratios) / wall:.2f} | "
                  f"{base_wall / wall:.1f}x | {' / '.join(agree)} | {worst:.4f} | {' / '.join(routed)} |",
                  flush=True)


if __name__ == "__main__":
    main()
