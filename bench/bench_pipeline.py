"""The local executor's ceiling: how fast frames reach the replicas when
detection costs nothing, against the same decoders decoding alone.

    python bench/bench_pipeline.py [--work DIR] [--decoders N] [--clips 12]

For 360p, 720p and 1080p clips (10 s, 25 fps, a keyframe every 2 s):
- decode alone: N processes (a multiprocessing pool) sample the clips, as
  the decoders do, and throw the frames away;
- the executor: `LocalExecutor` with N decoders and one replica running the
  null detector (textsieve.testing: reads a pixel, finds nothing) in
  batches of 8 as a GPU replica takes them, frames
  through the pipes and the supervisor (`transport: pipe`, how every frame
  travelled before shared memory) and through shared memory (`shm`).
Two samplings: `uniform` (Data-Juicer's 3 frames a video, each clip listed
8 times: seeking dominates) and `interval` every 0.1 s (100 frames a video:
moving frames dominates). Frames/s = frames detected / the executor's wall
time after its workers were ready (`workers.ready_s` in the summary); the
first run of each case warms the page cache and is not counted. The ratio to
decode-alone is the share of the decoders' speed the pipeline keeps.

On a machine of few cores the decoders, not the supervisor, are the limit of
that table. The last table measures the supervisor alone: frames moved from
a process that decodes nothing (it copies one frame, as a decoder writes
its frames) to one that detects nothing, one at a time through this
process, pickled through both pipes (before) or as shared-memory handles.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from datetime import date
from fractions import Fraction
from pathlib import Path

from textsieve import testing
from textsieve.recipe import build_config
from textsieve.runtime.lifecycle import RunSetup
from textsieve.runtime.local import LocalExecutor
from textsieve.runtime.planning import plan_for
from textsieve.runtime.steps import decode, limits_of
from textsieve.synthetic import TextBlock, VideoSpec, write_video

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
SAMPLINGS = {"uniform": {}, "interval": {"filter.sampling": "interval", "filter.interval_s": 0.1,
                                         "filter.frame_sample_num": 100}}


def make_clips(folder: Path, size: tuple[int, int], count: int, repeat: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        path = folder / f"clip{i:02d}.mp4"
        if not path.exists():
            write_video(path, VideoSpec(width=size[0], height=size[1], fps=Fraction(25), frames=250, gop=50,
                                        blocks=(TextBlock(f"clip {i}", 20, size[1] // 2, size=size[1] // 12),)))
        rows.append({"videos": [str(path)]})
    dataset = folder / f"data-x{repeat}.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows * repeat))
    return dataset


def config_for(dataset: Path, export: Path, sampling: str):
    return build_config(overrides={"dataset_path": str(dataset), "export_path": str(export),
                                   "plan_frame_size": "1920x1080", **SAMPLINGS[sampling]}).config


def _decode_one(args) -> int:
    path, config = args
    return len(decode(path, config.filter, limits_of(config), threads=1).images)


def decode_alone(paths: list[str], config, decoders: int) -> float:
    with mp.get_context("spawn").Pool(decoders) as pool:
        pool.map(_decode_one, [(paths[0], config)])  # warm: imports, page cache
        t0 = time.monotonic()
        frames = sum(pool.map(_decode_one, [(p, config) for p in paths], chunksize=1))
        return frames / (time.monotonic() - t0)


def executor(config, decoders: int, transport: str) -> float:
    _, plan = plan_for(config)
    # a GPU replica's batches (8 frames): a CPU plan's batch of 1 would measure
    # round trips to a CPU replica, which no GPU machine makes
    plan.decoders, plan.decoder_threads, plan.batch_size = decoders, 1, 8
    summary = LocalExecutor(RunSetup.resolve(config, plan, restart=True), transport=transport).run()
    used = summary.workers.frame_transport
    if ("shared memory" in used) != (transport == "shm"):  # a small /dev/shm falls back to the pipes
        raise SystemExit(f"asked for transport {transport}, the run used: {used}")
    return summary.this_session.frames_detected / (summary.wall_s - summary.workers.ready_s)


# ---- the supervisor's own ceiling, without decoding ------------------------------------

def _producer(conn, shape, count, pool_ref) -> None:
    """A decoder that decodes nothing: the same frame, ``count`` times, into
    shared memory (a copy, as a decoder writes its frames) or down the pipe."""
    import numpy as np

    frame = np.full(shape, 7, np.uint8)
    pool = pool_ref.attach() if pool_ref is not None else None
    for _ in range(count):
        slots = conn.recv()  # a slot to write into (shm), or None (pipe)
        conn.send(pool.put_all(slots, [frame])[0] if pool is not None else frame)
    conn.send(None)


def _consumer(conn, pool_ref) -> None:
    """A replica that detects nothing: it reads a pixel of each frame."""
    pool = pool_ref.attach() if pool_ref is not None else None
    while (item := conn.recv()) is not None:
        image = pool.resolve(item) if pool is not None else item
        int(image[0, 0, 0])
        conn.send(True)


def supervisor_ceiling(shape: tuple[int, int, int], count: int, shm: bool) -> float:
    """Frames/s one supervisor thread moves from a producer to a consumer
    process: pickled through both pipes (`transport: pipe`, how frames
    travelled before), or as shared-memory handles (`shm`)."""
    from textsieve.runtime.shm import FramePool

    ctx = mp.get_context("spawn")
    pool = FramePool.create(8, shape[0] * shape[1] * shape[2]) if shm else None
    ref = pool.ref() if pool is not None else None
    (prod_here, prod_there), (cons_here, cons_there) = ctx.Pipe(), ctx.Pipe()
    workers = [ctx.Process(target=_producer, args=(prod_there, shape, count, ref)),
               ctx.Process(target=_consumer, args=(cons_there, ref))]
    for w in workers:
        w.start()
    try:
        prod_here.send(pool.acquire(1) if pool else None)
        t0, moved = None, 0
        while (item := prod_here.recv()) is not None:
            t0 = t0 or time.monotonic()  # from the first frame: start-up is not the relay
            if moved + 1 < count:
                prod_here.send(pool.acquire(1) if pool else None)
            cons_here.send(item)
            cons_here.recv()
            if pool is not None:
                pool.release([item.slot])
            moved += 1
        cons_here.send(None)
        return (moved - 1) / (time.monotonic() - t0)
    finally:
        for w in workers:
            w.join(10)
        if pool is not None:
            pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench-pipeline"))
    parser.add_argument("--decoders", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--clips", type=int, default=12)
    args = parser.parse_args()
    print(f"# pipeline ceiling, {date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{args.decoders} decoders, null detector\n")
    print("| sampling | resolution | decode alone f/s | pipe f/s (x decode) | shm f/s (x decode) | shm / pipe |")
    print("|---|---|---|---|---|---|")
    results = {}
    for sampling in SAMPLINGS:
        for label, size in SIZES.items():
            dataset = make_clips(args.work / label, size, args.clips, 8 if sampling == "uniform" else 1)
            paths = [json.loads(line)["videos"][0] for line in dataset.read_text().splitlines()]
            alone = decode_alone(paths, config_for(dataset, args.work / "x", sampling), args.decoders)
            rates = {}
            for transport in ("pipe", "shm"):
                config = testing.null_config(config_for(dataset, args.work / f"out-{sampling}-{label}-{transport}", sampling))
                executor(config, args.decoders, transport)  # warm
                rates[transport] = executor(config, args.decoders, transport)
            results[f"{sampling}/{label}"] = {"decode_alone": alone, **rates}
            print(f"| {sampling} | {label} | {alone:.1f} | {rates['pipe']:.1f} ({rates['pipe'] / alone:.2f}) | "
                  f"{rates['shm']:.1f} ({rates['shm'] / alone:.2f}) | {rates['shm'] / rates['pipe']:.1f}x |", flush=True)
    (args.work / "pipeline.json").write_text(json.dumps(results, indent=2))
    print("\nThe supervisor's own ceiling: frames moved from a process that decodes nothing to one that "
          "detects nothing, through this process\n")
    print("| resolution | pipe f/s (before) | shm f/s | shm / pipe |")
    print("|---|---|---|---|")
    for label, (width, height) in SIZES.items():
        count = {"360p": 2000, "720p": 600, "1080p": 300}[label]
        pipe = supervisor_ceiling((height, width, 3), count, shm=False)
        shm = supervisor_ceiling((height, width, 3), count * 4, shm=True)
        results[f"ceiling/{label}"] = {"pipe": pipe, "shm": shm}
        print(f"| {label} | {pipe:.0f} | {shm:.0f} | {shm / pipe:.0f}x |", flush=True)
    (args.work / "pipeline.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
