"""The fast detector, chosen by measurement: candidates x resolutions on the
benchmark clips, against drawn-text ground truth and against CRAFT.

    python bench/bench_fast.py                      # frames: accuracy, agreement, speed, memory
    python bench/bench_fast.py --e2e                # plus `textsieve run` craft vs ppocr, videos/s

Clips: the 200 clips of bench_dj.py (flat backgrounds; its dataset is reused
or made) and --busy clips with the same text over a photo-like scene
(colour fields, shapes, fine stripes), where detectors disagree. For every
clip the three frames Data-Juicer samples are decoded at each candidate's
max_side exactly as `textsieve run` decodes them, and every candidate runs
on them one frame at a time with both CPU cores.

Candidates: CRAFT native (the reference) and at max_side 640; PP-OCRv6 small
detection (rapidocr 3.10.0, the wheel textsieve depends on) native, 960 and
640; PP-OCRv4 mobile detection (from the rapidocr 3.8.4 wheel, fetched into
--work by pip) native and 960.
Agreement after calibration is held out: 5-fold by video, each video mapped
by a fit that never saw it (textsieve.calibration.cross_validate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_dj import clip_spec, make_dataset  # noqa: E402

from textsieve.calibration import VideoPair, calibrate, evaluate  # noqa: E402
from textsieve.detect.area import frame_text_ratio  # noqa: E402
from textsieve.synthetic import drawn_text_ratio, write_video  # noqa: E402
from textsieve.video.frames import sample_video  # noqa: E402

RANGES = {"ratio <= 0.05": (0.0, 0.05), "ratio <= 0.1": (0.0, 0.1)}
V4_WHEEL = "rapidocr==3.8.4"
V4_MEMBER = "rapidocr/models/ch_PP-OCRv4_det_mobile.onnx"


def v4_model(work: Path) -> Path:
    path = work / "models" / Path(V4_MEMBER).name
    if not path.exists():
        wheels = work / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), V4_WHEEL], check=True)
        wheel = next(wheels.glob("rapidocr-3.8.4-*.whl"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            path.write_bytes(z.read(V4_MEMBER))
    return path


def candidates(work: Path) -> dict[str, tuple[str, dict, int | None]]:
    v4 = str(v4_model(work))
    return {
        "craft": ("craft", {}, None),
        "craft@640": ("craft", {}, 640),
        "ppocr-v6": ("ppocr", {}, None),
        "ppocr-v6@960": ("ppocr", {}, 960),
        "ppocr-v6@640": ("ppocr", {}, 640),
        "ppocr-v4": ("ppocr", {"model_path": v4}, None),
        "ppocr-v4@960": ("ppocr", {"model_path": v4}, 960),
    }


def clips(work: Path, busy: int) -> list[dict]:
    """The benchmark clips with their specs (for the drawn ground truth)."""
    data = work / "dj200" / "data"
    make_dataset(data, 200, 0)  # cached: writes only what is missing
    rng = random.Random(5)
    out = []
    for i in range(200):
        spec = clip_spec(rng, i)
        kind = ["none", "caption", "subtitles", "slides", "moving"][i % 5]
        out.append({"path": str((data / f"clip{i:04d}_{spec.width}x{spec.height}.mp4").resolve()), "spec": spec,
                    "kind": kind, "scene": "flat"})
    rng = random.Random(11)
    folder = work / "fast" / "busy"
    for i in range(busy):
        spec = clip_spec(rng, i)
        spec = replace(spec, scene="busy", seed=i, frames=min(spec.frames, int(4 * spec.fps)))
        path = folder / f"busy{i:04d}_{spec.width}x{spec.height}.mp4"
        if not path.exists():
            write_video(path.with_suffix(".tmp.mp4"), spec)
            path.with_suffix(".tmp.mp4").rename(path)
        out.append({"path": str(path.resolve()), "spec": spec, "kind": ["none", "caption", "subtitles", "slides", "moving"][i % 5],
                    "scene": "busy"})
    return out


def measure_frames(work: Path, busy: int, only: list[str] | None) -> dict:
    """Per clip, every candidate in turn on the same frames: a noisy neighbour
    slows them all alike, so the speed ratios hold."""
    from textsieve.detect import registry
    from textsieve.resources.planner import Replica

    cache_file = work / "fast" / "frames.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    cands = {k: v for k, v in candidates(work).items() if not only or k in only}
    models = {name: registry.get(registry.prepare(m, **params), "cpu", Replica("cpu", None, 2))
              for name, (m, params, _) in cands.items()}
    for n, c in enumerate(clips(work, busy)):
        for name, (_, _, max_side) in cands.items():
            done = cache.setdefault(name, {})
            if c["path"] in done:
                continue
            sampled = sample_video(c["path"], 3, max_side=max_side)
            width, height = sampled.frame_size
            ratios, seconds = [], []
            for image in sampled.images:
                t0 = time.perf_counter()
                det = models[name]([image])[0]
                seconds.append(time.perf_counter() - t0)
                ratios.append(frame_text_ratio(det, width, height))
            done[c["path"]] = {"ratios": ratios, "seconds": seconds, "times": sampled.times}
        if n % 10 == 9:
            print(f"{n + 1} clips", flush=True)
            cache_file.write_text(json.dumps(cache))
    cache_file.write_text(json.dumps(cache))
    registry.release()
    return cache


def memory(work: Path) -> dict[str, float]:
    """Peak RSS of a replica process per candidate (1280x720, batch 1), by `textsieve profile`'s measurement."""
    from textsieve.resources.profile import measure

    os.environ["TEXTSIEVE_CACHE_DIR"] = str(work / "fast" / "profiles")
    out = {}
    for name, (model_name, params, max_side) in candidates(work).items():
        if max_side is None:
            out[name] = measure(model_name, params, "cpu", 1, 1280, 720)["host_bytes"] / 2**20
    return out


def drawn(c: dict, times: list[float]) -> list[float]:
    return [drawn_text_ratio(c["spec"], round(t * float(c["spec"].fps))) for t in times]


def report(work: Path, busy: int, results: dict, mem: dict[str, float]) -> str:
    all_clips = clips(work, busy)
    ref = results["craft"]
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {date.today()}; "
             f"`python bench/bench_fast.py --busy {busy}`", ""]
    # speed per frame by native size class
    lines += ["| candidate | s/frame 360p | s/frame 720p | s/frame 1080p | x CRAFT (all frames) | peak RSS MiB (720p) |",
              "|---|---|---|---|---|---|"]
    classes = {"360p": {(640, 360), (360, 640)}, "720p": {(1280, 720)}, "1080p": {(1920, 1080), (1080, 1920)}}
    total_ref = sum(sum(ref[c["path"]]["seconds"]) for c in all_clips)
    for name, res in results.items():
        cells = []
        for sizes in classes.values():
            secs = [s for c in all_clips if (c["spec"].width, c["spec"].height) in sizes for s in res[c["path"]]["seconds"]]
            cells.append(f"{statistics.median(secs):.3f}" if secs else "-")
        total = sum(sum(res[c["path"]]["seconds"]) for c in all_clips)
        lines.append(f"| {name} | {' | '.join(cells)} | {total_ref / total:.1f}x | {format(mem[name], '.0f') if name in mem else '-'} |")
    lines += ["", "Accuracy and agreement, per video (mean of its 3 frames); agreement = same decision as CRAFT native; "
              "'cal.' = held out after calibration.", ""]
    head = "| candidate | scene | r vs drawn | MAE vs drawn | MAE vs CRAFT | " + " | ".join(
        f"agree {k} raw | cal." for k in RANGES) + " |"
    lines += [head, "|" + "---|" * (5 + 2 * len(RANGES))]
    disagreements = {}
    for name, res in results.items():
        for scene in ("flat", "busy", "all"):
            cs = [c for c in all_clips if scene in ("all", c["scene"])]
            if not cs:
                continue
            pairs = [VideoPair(c["path"], res[c["path"]]["ratios"], ref[c["path"]]["ratios"], f"{c['scene']}/{c['kind']}")
                     for c in cs]
            truth = [float(np.mean(drawn(c, res[c["path"]]["times"]))) for c in cs]
            got = [float(np.mean(p.fast)) for p in pairs]
            raw = evaluate(pairs, [p.fast for p in pairs], "mean", RANGES)
            cal = calibrate(pairs, "x", None, "mean", RANGES).report["held_out"] if name != "craft" else raw
            r = float(np.corrcoef(got, truth)[0, 1])
            lines.append(f"| {name} | {scene} | {r:.3f} | {np.mean(np.abs(np.subtract(got, truth))):.4f} | "
                         f"{raw['mean_abs_error']:.4f} | " + " | ".join(
                             f"{100 * raw['agreement'][k]:.1f}% | {100 * cal['agreement'][k]:.1f}%" for k in RANGES) + " |")
            if scene == "all" and name != "craft":
                disagreements[name] = {k: [d | {"video": Path(d["video"]).name} for d in v] for k, v in cal["disagreements"].items()}
    (work / "fast" / "disagreements.json").write_text(json.dumps(disagreements, indent=2))
    lines += ["", "Held-out disagreements with CRAFT, by clip kind (scene/text):", ""]
    for name, by_range in disagreements.items():
        for k, entries in by_range.items():
            kinds: dict[str, int] = {}
            for d in entries:
                kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
            listed = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())) or "none"
            lines.append(f"- {name}, {k}: {listed}")
    return "\n".join(lines)


def show(work: Path, busy: int, candidate: str, limit: int) -> list[Path]:
    """The held-out disagreements of ``candidate`` as pictures: each video's middle
    sampled frame with CRAFT's boxes (red) left and the candidate's (green) right."""
    from PIL import Image, ImageDraw

    from textsieve.detect import registry

    cands = candidates(work)
    wrong = json.loads((work / "fast" / "disagreements.json").read_text()).get(candidate, {})
    seen: dict[str, dict] = {}
    for entries in wrong.values():
        for d in entries:
            seen.setdefault(d["video"], d)
    out_dir = work / "fast" / "show"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {Path(c["path"]).name: c["path"] for c in clips(work, busy)}
    written = []
    for name, d in list(seen.items())[:limit]:
        panels = []
        for cand, colour in (("craft", (255, 0, 0)), (candidate, (0, 255, 0))):
            model_name, params, max_side = cands[cand]
            sampled = sample_video(paths[name], 3, max_side=max_side)
            image = sampled.images[len(sampled.images) // 2]
            det = registry.get(registry.prepare(model_name, **params), "cpu")([image])[0]
            canvas = Image.fromarray(image)
            draw = ImageDraw.Draw(canvas)
            for x0, x1, y0, y1 in det.horizontal:
                draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
            for quad in det.free:
                draw.polygon([tuple(pt) for pt in quad], outline=colour, width=2)
            panels.append(canvas.resize((640, round(640 * canvas.height / canvas.width))))
        both = Image.new("RGB", (1290, max(p.height for p in panels)), (255, 255, 255))
        both.paste(panels[0], (0, 0))
        both.paste(panels[1], (650, 0))
        path = out_dir / f"{candidate}_{Path(name).stem}.png"
        both.save(path)
        written.append(path)
        print(f"{path}: {d['kind']} craft {d['craft']:.3f} vs {candidate} {d['fast']:.3f}")
    return written


def e2e(work: Path) -> str:
    """`textsieve run` on bench_dj's 40-clip dataset: CRAFT, then ppocr, same machine, one after the other."""
    data = work / "dj40" / "data"
    dataset = make_dataset(data, 40, 1)
    rows = []
    for name, extra in (("craft", []), ("ppocr", ["--detector", "ppocr"]),
                        ("ppocr@960", ["--detector", "ppocr", "--max-side", "960"])):
        export = work / "fast" / f"e2e_{name}"
        cmd = ["textsieve", "run", "--dataset", str(dataset), "--export", str(export), "--restart",
               "--max-area-ratio", "0.1", *extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        s = json.loads((export / "summary.json").read_text())
        rows.append((name, wall, s["this_session"]["videos_judged"], s["counts"]))
    base = rows[0][2] / rows[0][1]
    out = ["| run | wall s | videos judged | videos/s | x CRAFT | kept/dropped/error |", "|---|---|---|---|---|---|"]
    for name, wall, videos, counts in rows:
        out.append(f"| {name} | {wall:.1f} | {videos} | {videos / wall:.3f} | {videos / wall / base:.1f}x | "
                   f"{counts['kept']}/{counts['dropped']}/{counts['error']} |")
    return f"`{dataset.name}` (41 videos + 5 bad files), whole CLI runs incl. start-up:\n\n" + "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "work")
    parser.add_argument("--busy", type=int, default=60, help="clips over a busy scene (default 60)")
    parser.add_argument("--only", nargs="*", help="measure only these candidates now")
    parser.add_argument("--e2e", action="store_true", help="also time whole `textsieve run`s, craft vs ppocr")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--show", metavar="CANDIDATE", help="draw the held-out disagreements of a candidate, then stop")
    args = parser.parse_args()
    if args.show:
        show(args.work, args.busy, args.show, 12)
        return
    results = measure_frames(args.work, args.busy, args.only)
    if args.only:
        return
    mem = {} if args.no_memory else memory(args.work)
    text = report(args.work, args.busy, results, mem)
    if args.e2e:
        text += "\n\n" + e2e(args.work)
    (args.work / "fast" / "report.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
