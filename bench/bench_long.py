"""One long video, judged in pieces: many decoders on one video, memory flat.

    python bench/bench_long.py [--work DIR] [--minutes 60]

A 1080p video of --minutes minutes and a 10-minute one, as a camera or a
stream makes them: 25 frames/s, a keyframe every 10 s, B-frames, a slow pan
over a busy scene (every block moves, so decoding costs what real footage
costs), a caption in one minute of every seven. Both are judged with
`segment_s: 60` by the local executor and the null detector
(textsieve.testing: detection costs nothing, so decoding is what is
measured): wall time with 1 decoder against all of this machine's cores, and
the run's peak resident memory (the supervisor and its workers, sampled by
textsieve's own monitor) for both lengths: flat means memory does not grow
with the video.

Encoding an hour of 1080p here would take longer than the runs: two 10-s
GOPs (with and without the caption) are encoded once and their packets
repeated, timestamps shifted, into the long file. Each GOP starts with an
IDR frame and references nothing outside itself, so the result decodes as
any long H.264 file does.
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
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from textsieve import testing
from textsieve.recipe import build_config
from textsieve.runtime.lifecycle import RunSetup
from textsieve.runtime.local import LocalExecutor
from textsieve.runtime.monitor import ResourceMonitor
from textsieve.runtime.planning import plan_for
from textsieve.synthetic import VideoSpec, render_frame

FPS, GOP_S = 25, 10


def gop(path: Path, caption: bool) -> Path:
    """One closed 10-s GOP at 1080p: a pan over a busy scene."""
    if path.exists():
        return path
    scene = render_frame(VideoSpec(width=2 * 1920, height=1080, scene="busy", seed=3), 0)
    font = ImageFont.load_default(size=64)
    part = path.with_name(path.stem + ".part.mp4")
    with av.open(str(part), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "veryfast", "x264-params": f"keyint={FPS * GOP_S}:min-keyint={FPS * GOP_S}:"
                                                                "scenecut=0:bframes=3:open-gop=0"}
        for i in range(FPS * GOP_S):
            image = Image.fromarray(np.ascontiguousarray(scene[:, 4 * i:4 * i + 1920]))
            if caption:
                ImageDraw.Draw(image).text((200, 900), "A caption that comes and goes", fill=(255, 255, 255), font=font)
            frame = np.asarray(image)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    part.rename(path)
    return path


def long_video(path: Path, minutes: int, work: Path) -> Path:
    """``minutes`` of 1080p: the two GOPs repeated, the caption in minute 3 of every 7."""
    if path.exists():
        return path
    sources = {c: av.open(str(gop(work / f"gop-{'caption' if c else 'plain'}.mp4", c))) for c in (False, True)}
    packets = {c: [p for p in src.demux(video=0) if p.size] for c, src in sources.items()}
    template = sources[False].streams.video[0]
    span = int(GOP_S / template.time_base)  # one GOP's duration in stream ticks
    part = path.with_name(path.stem + ".part.mp4")  # an interrupted run leaves no short video behind
    with av.open(str(part), "w") as out:
        stream = out.add_stream_from_template(template)
        for k in range(minutes * 60 // GOP_S):
            for packet in packets[(k * GOP_S // 60) % 7 == 3]:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + k * span, packet.dts + k * span
                copy.is_keyframe, copy.time_base, copy.stream = packet.is_keyframe, packet.time_base, stream
                out.mux(copy)
    for src in sources.values():
        src.close()
    part.rename(path)
    return path


def run(video: Path, export: Path, decoders: int) -> tuple[float, int, dict]:
    dataset = export.with_suffix(".jsonl")
    dataset.write_text(json.dumps({"videos": [str(video)]}) + "\n")
    config = testing.null_config(build_config(overrides={
        "dataset_path": str(dataset), "export_path": str(export), "filter.segment_s": 60, "filter.max_area_ratio": 0.01}).config)
    _, plan = plan_for(config)
    plan.decoders, plan.decoder_threads = decoders, 1
    rss = ResourceMonitor(None, {}, interval_s=0.2).start()  # this process and its workers
    summary = LocalExecutor(RunSetup.resolve(config, plan, restart=True)).run()
    rss.stop()
    return summary.wall_s, rss.peak_host_rss, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench-long"))
    parser.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    t0 = time.monotonic()
    hour = long_video(args.work / f"pan-{args.minutes}min-1080p.mp4", args.minutes, args.work)
    ten = long_video(args.work / "pan-10min-1080p.mp4", 10, args.work)
    print(f"# one long video in pieces, {date.today()}, {platform.machine()}, {cores} cores "
          f"(videos made in {time.monotonic() - t0:.0f} s)\n")
    print("| video | decoders | pieces | frames sampled | wall | after start-up | peak RSS (run, all processes) |")
    print("|---|---|---|---|---|---|---|")
    for video, label in ((ten, "10 min"), (hour, f"{args.minutes} min")):
        for decoders in sorted({1, cores}):
            wall, peak, summary = run(video, args.work / f"out-{label.replace(' ', '')}-{decoders}", decoders)
            if summary.counts.error:
                raise SystemExit(f"{video}: the run recorded an error; see {args.work}/out-*/errors.jsonl")
            pieces = len(json.loads((args.work / f"out-{label.replace(' ', '')}-{decoders}" / "stats.jsonl")
                                    .read_text())["videos"][0]["pieces"])
            working = wall - summary.workers.ready_s
            print(f"| {label} 1080p | {decoders} | {pieces} | {summary.this_session.frames_decoded} | "
                  f"{wall:.1f} s | {working:.1f} s | {peak / 2**20:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
