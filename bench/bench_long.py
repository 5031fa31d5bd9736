"""One long video, judged in pieces: many decoders on one video, memory flat.

    python bench/bench_long.py [--work DIR] [--minutes 60]

A 1080p video of --minutes minutes (2 frames/s, a keyframe every 10 s, a
caption in some minutes) and a 10-minute one, judged with `segment_s: 60`
by the local executor and the null detector (textsieve.testing: detection
costs nothing, so decoding is what is measured): wall time with 1 decoder
against all of this machine's cores, and the run's peak resident memory
(the supervisor and its workers, sampled by textsieve's own monitor) for both lengths: flat
means memory does not grow with the video.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import av

from textsieve import testing
from textsieve.recipe import build_config
from textsieve.runtime.local import LocalExecutor
from textsieve.runtime.monitor import ResourceMonitor
from textsieve.runtime.planning import plan_for
from textsieve.synthetic import TextBlock, VideoSpec, render_frame


def long_video(path: Path, minutes: int) -> Path:
    if path.exists():
        return path
    caption = VideoSpec(width=1920, height=1080, blocks=(TextBlock("A caption that comes and goes", 200, 900, size=64),))
    plain = VideoSpec(width=1920, height=1080)
    frames = {True: render_frame(caption, 0), False: render_frame(plain, 0)}
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "ultrafast", "x264-params": "keyint=20:min-keyint=20:scenecut=0"}
        for second in range(minutes * 60 * 2):
            image = frames[(second // 120) % 7 == 3]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def run(video: Path, export: Path, decoders: int) -> tuple[float, int, dict]:
    dataset = export.with_suffix(".jsonl")
    dataset.write_text(json.dumps({"videos": [str(video)]}) + "\n")
    config = testing.null_config(build_config(overrides={
        "dataset_path": str(dataset), "export_path": str(export), "filter.segment_s": 60, "filter.max_area_ratio": 0.01}))
    _, plan = plan_for(config)
    plan.decoders, plan.decoder_threads = decoders, 1
    rss = ResourceMonitor(None, {}, interval_s=0.2).start()  # this process and its workers
    summary = LocalExecutor(config, plan, restart=True).run()
    rss.stop()
    return summary["wall_s"], rss.peak_host_rss, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench-long"))
    parser.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    t0 = time.monotonic()
    hour = long_video(args.work / f"long-{args.minutes}min-1080p.mp4", args.minutes)
    ten = long_video(args.work / "long-10min-1080p.mp4", 10)
    print(f"# one long video in pieces, {date.today()}, {platform.machine()}, {cores} cores "
          f"(videos made in {time.monotonic() - t0:.0f} s)\n")
    print("| video | decoders | pieces | wall | peak RSS (run, all processes) |")
    print("|---|---|---|---|---|")
    for video, label in ((ten, "10 min"), (hour, f"{args.minutes} min")):
        for decoders in sorted({1, cores}):
            wall, peak, summary = run(video, args.work / f"out-{label.replace(' ', '')}-{decoders}", decoders)
            pieces = len(json.loads((args.work / f"out-{label.replace(' ', '')}-{decoders}" / "stats.jsonl")
                                    .read_text())["videos"][0]["pieces"])
            print(f"| {label} 1080p | {decoders} | {pieces} | {wall:.1f} s | {peak / 2**20:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
