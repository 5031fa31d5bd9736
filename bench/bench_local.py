"""Local executor against one process, on data this script makes.

    python bench/bench_local.py [--clips 24] [--scale 4] [--work bench/work/local]

Measures, in one run (ratios are what to read on a shared machine):
  1. the detector's own busy time on exactly the frames a run detects
     (in this process, same threads), and the decode time for them;
  2. wall time of `textsieve run --executor serial` (one process) and of
     `textsieve run` (the local executor, plan np auto), same data;
  3. peak RSS (supervisor + workers, sampled every second) of the local
     executor on the dataset and on one `--scale` times larger: flat if the
     queues are bounded.
Prints a markdown block for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from fractions import Fraction
from pathlib import Path

from textsieve.recipe import build_config
from textsieve.detect.craft import CraftDetector
from textsieve.runtime.steps import decode, limits_of
from textsieve.synthetic import TextBlock, VideoSpec, write_video


def make_dataset(folder: Path, clips: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(clips):
        kind = i % 4
        blocks = [(), (TextBlock("@caption", 200, 10, size=18),),
                  (TextBlock("Subtitle line here", 30, 190, size=24),),
                  tuple(TextBlock(f"Slide row {r}", 10, 10 + 30 * r, size=22) for r in range(6))][kind]
        path = folder / f"clip{i:04d}.mp4"
        if not path.exists():
            write_video(path, VideoSpec(width=320, height=240, frames=100, fps=Fraction(25), gop=25, blocks=blocks))
        rows.append({"id": i, "videos": [path.name]})
    dataset = folder / f"data_{clips}.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dataset


def cli_run(dataset: Path, export: Path, *flags: str) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(dataset), "--export", str(export),
                           "--max-area-ratio", "0.1", "--restart", *flags], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return wall, json.loads((export / "summary.json").read_text())


def compute_floor(dataset: Path) -> tuple[float, float, int]:
    """Decode and detect exactly the run's frames in this process: (decode s, detect s, frames)."""
    config = build_config(overrides={"dataset_path": str(dataset), "export_path": "unused"}).config
    paths = [str(dataset.parent / json.loads(l)["videos"][0]) for l in dataset.read_text().splitlines()]
    detector = CraftDetector("cpu")
    detector([v for v in decode(paths[0], config.filter, limits_of(config)).images])  # warm-up
    decode_s = detect_s = 0.0
    frames = 0
    for path in paths:
        t0 = time.perf_counter()
        sampled = decode(path, config.filter, limits_of(config))
        t1 = time.perf_counter()
        for image in sampled.images:  # one at a time: the plan's CPU batch
            detector([image])
        decode_s += t1 - t0
        detect_s += time.perf_counter() - t1
        frames += len(sampled.images)
    return decode_s, detect_s, frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--work", default="bench/work/local")
    args = parser.parse_args()
    work = Path(args.work)
    small = make_dataset(work / "clips", args.clips)
    large = make_dataset(work / "clips", args.clips * args.scale)

    decode_s, detect_s, frames = compute_floor(small)
    serial_wall, serial = cli_run(small, work / "serial", "--executor", "serial")
    local_wall, local = cli_run(small, work / "local")
    large_wall, large_summary = cli_run(large, work / "local_large")
    large_serial_wall, _ = cli_run(large, work / "serial_large", "--executor", "serial")
    same = all((work / "serial" / f).read_text() == (work / "local" / f).read_text()
               for f in ("kept.jsonl", "dropped.jsonl", "errors.jsonl", "stats.jsonl"))
    rss_small = local["resources"]["peak_host_rss_bytes"] / 2**20
    rss_large = large_summary["resources"]["peak_host_rss_bytes"] / 2**20
    plan = local["plan"]
    print(f"""### Local executor vs one process ({date.today()}, {platform.node()}, {platform.machine()}, {__import__('os').cpu_count()} cores)
Command: `python bench/bench_local.py --clips {args.clips} --scale {args.scale}`
Data: {args.clips} clips, 320x240, 4 s, 25 fps, GOP 25, text none/caption/subtitle/slide; {frames} frames detected.
Plan: {len(plan['replicas'])} replica(s) x {plan['replicas'][0]['threads']} torch threads on {plan['replicas'][0]['device']}, {plan['decoders']} decoder(s), batch {plan['batch_size']}.

| measure | value |
|---|---|
| detector busy time on exactly these frames (in-process, batch 1) | {detect_s:.1f} s ({detect_s / frames:.3f} s/frame) |
| decode time for them (in-process, seek) | {decode_s:.1f} s |
| `--executor serial` wall (incl. ~start-up) | {serial_wall:.1f} s ({args.clips / serial_wall:.3f} videos/s) |
| local executor wall (np auto) | {local_wall:.1f} s ({args.clips / local_wall:.3f} videos/s) |
| speedup local / serial | {serial_wall / local_wall:.2f}x |
| same, {args.clips * args.scale} clips: serial {large_serial_wall:.1f} s, local {large_wall:.1f} s | {large_serial_wall / large_wall:.2f}x |
| overlap: detector busy / local wall | {detect_s / local_wall:.2f} |
| replica busy (its own clock, incl. model load) / executor loop time | {local['workers']['replica_busy_s']:.1f} s / {local['wall_s']:.1f} s = {local['workers']['replica_busy_s'] / local['wall_s']:.2f} |
| outputs identical serial vs local | {same} |
| peak RSS, {args.clips} clips | {rss_small:.0f} MiB |
| peak RSS, {args.clips * args.scale} clips | {rss_large:.0f} MiB (ratio {rss_large / rss_small:.2f}) |
""")


if __name__ == "__main__":
    main()
