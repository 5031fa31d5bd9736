"""Where textsieve's time goes, per stage, with cProfile over a serial run
(the same code a replica and a decoder run, in one process):

    python bench/profile_stages.py [--clips 12] [--size 640x360]

Stages: decode (PyAV seek + decode + RGB), pre-processing (EasyOCR's resize and
normalisation), detector forward (the CRAFT network), post-processing (heat map
to boxes, box grouping), area and decision, output I/O.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
from fractions import Fraction
from pathlib import Path

from textsieve.recipe import build_config
from textsieve.runtime.lifecycle import RunSetup
from textsieve.runtime.serial import SerialExecutor
from textsieve.synthetic import TextBlock, VideoSpec, write_video

STAGES = {
    "decode": [("frames.py", "sample_video")],
    "pre-processing": [("imgproc.py", "resize_aspect_ratio"), ("imgproc.py", "normalizeMeanVariance")],
    "detector forward": [("module.py", "_call_impl")],
    "post-processing": [("craft_utils.py", "getDetBoxes"), ("craft_utils.py", "adjustResultCoordinates"),
                        ("utils.py", "group_text_box")],
    "area + decision": [("area.py", "frame_text_ratio"), ("filter.py", "keep_sample")],
    "output I/O": [("export.py", "write"), ("export.py", "commit"), ("export.py", "finalize")],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--work", default="bench/work/profile")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(args.clips):
        blocks = (TextBlock("A subtitle line of text", w // 10, h - h // 5, size=h // 14),) if i % 2 else ()
        path = work / f"p{i}_{w}x{h}.mp4"
        if not path.exists():
            write_video(path, VideoSpec(width=w, height=h, frames=250, fps=Fraction(25), gop=50, blocks=blocks))
        rows.append({"videos": [path.name]})
    dataset = work / "data.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = build_config(overrides={"dataset_path": str(dataset), "export_path": str(work / "out"), "device": "cpu"}).config
    profiler = cProfile.Profile()
    profiler.enable()
    SerialExecutor(RunSetup.resolve(config, restart=True)).run()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(tt for (_, _, _), (_, _, tt, _, _) in stats.items())

    def cumulative(file: str, func: str) -> float:
        return sum(ct for (f, _, fn), (_, _, _, ct, _) in stats.items() if f.endswith(file) and fn == func)

    print(f"### Where the time goes ({args.clips} clips of {args.size}, 10 s, 3 frames each; `python bench/profile_stages.py --clips {args.clips} --size {args.size}`)\n")
    print("| stage | seconds | share |\n|---|---|---|")
    forward = max(cumulative("module.py", "_call_impl") - 0, 0)
    for stage, funcs in STAGES.items():
        secs = forward if stage == "detector forward" else sum(cumulative(f, fn) for f, fn in funcs)
        print(f"| {stage} | {secs:.2f} | {secs / total:.1%} |")
    print(f"| total profiled (incl. model load) | {total:.2f} | 100% |")


if __name__ == "__main__":
    main()
