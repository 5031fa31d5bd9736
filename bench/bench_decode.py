"""What makes exact-frame decoding cheaper, with identical frames.

    python bench/bench_decode.py [--work DIR] [--repeats 3]

Clips as a GPU machine's decoders meet them: 720p and 1080p, 20 s and 60 s,
25 fps, a keyframe every 10 s, 3 B-frames between references (x264). For
each, Data-Juicer's 3 uniform frames (and 8) are decoded by
`textsieve.video.frames.sample_video` with:
- FFmpeg threads 1, 2, 4 (frame threading, per decoder process);
- skipping non-reference frames while far from the next target, on / off.
It prints seconds per video (median of --repeats) and frames decoded, and
checks that every setting picks the same frames (the tests prove them equal
to a full decode). Reading a video once when several targets share a GOP is
already the rule (the walk only seeks when the next target is more than a
GOP away); the frames-decoded column shows what it saves.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from fractions import Fraction
from pathlib import Path

from textsieve.synthetic import TextBlock, VideoSpec, write_video
from textsieve.video import frames as frames_module
from textsieve.video.frames import sample_video

CLIPS = {"720p-20s": (1280, 720, 20), "720p-60s": (1280, 720, 60), "1080p-20s": (1920, 1080, 20),
         "1080p-60s": (1920, 1080, 60)}


def clip(work: Path, name: str) -> str:
    width, height, seconds = CLIPS[name]
    path = work / f"{name}.mp4"
    if not path.exists():
        write_video(path, VideoSpec(width=width, height=height, fps=Fraction(25), frames=25 * seconds, gop=250,
                                    bframes=3, blocks=(TextBlock("a moving caption", 0, height // 2, size=height // 12,
                                                                 dx=4),)))
    return str(path)


def timed(path: str, n: int, threads: int, skip: bool, repeats: int) -> tuple[float, int, list[float]]:
    frames_module.SKIP_NON_REFERENCE = skip
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sampled = sample_video(path, n, threads=threads)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), sampled.decoded, sampled.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench-decode"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# exact-frame decoding, {date.today()}, {platform.machine()}, {os.cpu_count()} cores\n")
    print("| clip | frames | threads | skip non-ref | s/video | frames decoded | x baseline |")
    print("|---|---|---|---|---|---|---|")
    for name in CLIPS:
        path = clip(args.work, name)
        for n in (3, 8):
            base, _, times = timed(path, n, 1, False, args.repeats)
            for threads in (1, 2, 4):
                for skip in (False, True):
                    seconds, decoded, got = timed(path, n, threads, skip, args.repeats)
                    assert got == times, "a setting picked other frames"
                    print(f"| {name} | {n} | {threads} | {'yes' if skip else 'no'} | {seconds:.3f} | {decoded} | "
                          f"{base / seconds:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
