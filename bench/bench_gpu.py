"""textsieve on a real GPU: speed, memory, and what sets the pace.

    python bench/bench_gpu.py [--work DIR] [--videos 60] [--detector craft|ppocr] [--precision fp32 fp16]

Needs a CUDA GPU (run it on one; nothing here is estimated). For 360p, 720p
and 1080p clips it runs `textsieve run --device cuda:0` as a user would and
prints videos/s and frames/s, the GPU's busy share (NVML utilisation,
sampled every 0.2 s while the run lasts), and whether the run was
decode-bound or detector-bound: the replicas' busy time over the wall time
(near 1: the GPU replicas were never waiting for frames). Then `textsieve
profile --device cuda:0` at batch 1, 8 and 16 for the measured memory per
replica at each resolution. With several `--precision` values (CRAFT's
arithmetic: fp32 is Data-Juicer's; bf16 and fp16 run it under torch autocast
on the tensor cores) each is measured in turn on the same clips, and the
largest |ratio difference| from the first is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from datetime import date
from fractions import Fraction
from pathlib import Path

from textsieve.synthetic import TextBlock, VideoSpec, write_video

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def clips(folder: Path, size: tuple[int, int], count: int) -> Path:
    width, height = size
    rows = []
    for i in range(count):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists():
            blocks = (TextBlock("Subtitles at the bottom", width // 10, height - height // 6, size=height // 18),) if i % 2 else ()
            write_video(path, VideoSpec(width=width, height=height, fps=Fraction(25), frames=250, gop=50, blocks=blocks))
        rows.append({"videos": [str(path)]})
    dataset = folder / "data.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dataset


class Utilisation:
    """NVML's GPU utilisation, sampled while a run lasts."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __enter__(self) -> "Utilisation":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return sum(self.samples) / max(1, len(self.samples))


def run(dataset: Path, export: Path, detector: str, precision: str = "fp32") -> dict:
    with Utilisation() as gpu:
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(dataset), "--export",
                               str(export), "--device", "cuda:0", "--detector", detector, "--restart",
                               *(["--precision", precision] if precision != "fp32" else [])],
                              capture_output=True, text=True)
        wall = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    summary = json.loads((export / "summary.json").read_text())
    session = summary["this_session"]
    busy = summary["workers"]["replica_busy_s"] / max(1, summary["workers"]["replicas"])
    # rates over the time the replicas could work: after every model was
    # loaded (start-up and CUDA initialisation are reported apart)
    working = summary["wall_s"] - summary["workers"]["ready_s"]
    return {"wall_s": round(wall, 1), "start_up_s": summary["workers"]["ready_s"],
            "videos_per_s": round(session["videos_judged"] / working, 2),
            "frames_per_s": round(session["frames_detected"] / working, 1), "gpu_busy": round(gpu.mean / 100, 3),
            "replica_busy_share": round(busy / working, 3),
            "bound": "detector" if busy / working > 0.8 else "decode",
            "peak_gpu_bytes": summary["resources"]["gpus"].get("0", {}).get("peak_used_bytes"),
            "plan": {"replicas": len(summary["plan"]["replicas"]), "decoders": summary["plan"]["decoders"],
                     "batch": summary["plan"]["batch_size"]}}


def ratios(export: Path) -> dict[str, float]:
    return {v["video"]: v["ratio"] for line in (export / "stats.jsonl").read_text().splitlines()
            for v in json.loads(line)["videos"]}


def profile(detector: str, batch: int, size: tuple[int, int], precision: str = "fp32") -> str:
    done = subprocess.run([sys.executable, "-m", "textsieve.cli", "profile", "--device", "cuda:0", "--detector", detector,
                           "--batch-size", str(batch), "--plan-frame-size", f"{size[0]}x{size[1]}",
                           *(["--precision", precision] if precision != "fp32" else [])],
                          capture_output=True, text=True)
    return (done.stdout.strip().splitlines() or [done.stderr[-300:]])[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench-gpu"))
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--detector", default="craft", choices=["craft", "ppocr"])
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"],
                        help="CRAFT's arithmetic, each measured in turn (the first is the reference)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu needs a CUDA GPU: nothing is estimated here")
    name = torch.cuda.get_device_name(0)
    results = {}
    for precision in args.precision:
        print(f"# {args.detector} ({precision}) on {name}, {date.today()}\n")
        print("| resolution | videos/s | frames/s | GPU busy | replica busy / wall | bound by | replicas x batch, decoders | "
              "peak GPU GiB | largest abs ratio diff from " + args.precision[0] + " |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, size in SIZES.items():
            folder = args.work / label
            folder.mkdir(parents=True, exist_ok=True)
            export = folder / f"out-{args.detector}-{precision}"
            r = results[f"{label} {precision}"] = run(clips(folder, size, args.videos), export, args.detector, precision)
            reference = ratios(folder / f"out-{args.detector}-{args.precision[0]}")
            got = ratios(export)
            r["max_abs_diff"] = max(abs(got[v] - reference[v]) for v in got if v in reference)
            plan = r["plan"]
            print(f"| {label} | {r['videos_per_s']} | {r['frames_per_s']} | {100 * r['gpu_busy']:.0f}% | "
                  f"{r['replica_busy_share']:.2f} | {r['bound']} | {plan['replicas']} x {plan['batch']}, "
                  f"{plan['decoders']} | {(r['peak_gpu_bytes'] or 0) / 2**30:.1f} | {r['max_abs_diff']:.1e} |")
        print(f"\nMeasured per-replica memory (`textsieve profile --device cuda:0`, {precision}):\n")
        for label, size in SIZES.items():
            for batch in (1, 8, 16):
                print(f"- {label}, batch {batch}: {profile(args.detector, batch, size, precision)}")
        print()
    (args.work / f"gpu-{args.detector}.json").write_text(json.dumps({"gpu": name, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
