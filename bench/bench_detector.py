"""CRAFT's speed per frame on this machine: batch size and memory format,
with the boxes compared so that a speed-up never changes an answer.

    python bench/bench_detector.py [--sizes 640x360 1280x720] [--frames 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from textsieve.detect.craft import CraftDetector
from textsieve.synthetic import TextBlock, VideoSpec, render_frame


def frames(w: int, h: int, n: int):
    blocks = (TextBlock("A subtitle line of text", w // 10, h - h // 5, size=h // 14),
              TextBlock("@channel", w - w // 4, h // 20, size=h // 20))
    return [render_frame(VideoSpec(width=w, height=h, blocks=blocks), i) for i in range(n)]


def per_frame(detector, images, batch: int) -> tuple[float, list]:
    detector(images[:1])  # warm-up
    t0 = time.perf_counter()
    out = []
    for i in range(0, len(images), batch):
        out += detector(images[i : i + batch])
    return (time.perf_counter() - t0) / len(images), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"])
    ap.add_argument("--frames", type=int, default=6)
    args = ap.parse_args()
    plain, fast = CraftDetector("cpu", channels_last=False), CraftDetector("cpu")
    print(f"torch threads: {torch.get_num_threads()}\n")
    print("| frame | setting | s/frame | speed-up | same boxes |\n|---|---|---|---|---|")
    for size in args.sizes:
        w, h = map(int, size.split("x"))
        images = frames(w, h, args.frames)
        base, ref = per_frame(plain, images, 1)
        print(f"| {size} | NCHW, batch 1 (EasyOCR as Data-Juicer runs it) | {base:.3f} | 1.00x | - |")
        for label, det, batch in (("channels_last, batch 1 (textsieve on CPU)", fast, 1),
                                  ("NCHW, batch 4", plain, 4), ("channels_last, batch 4", fast, 4)):
            t, out = per_frame(det, images, batch)
            same = all(a.horizontal == b.horizontal and a.free == b.free for a, b in zip(out, ref))
            print(f"| {size} | {label} | {t:.3f} | {base / t:.2f}x | {same} |")


if __name__ == "__main__":
    main()
