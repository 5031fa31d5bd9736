"""Kinds of text on real labelled clips, beside Cosmos-Curate's overlay rule (issue 26).

    nice -n 10 python bench/eval_kinds.py FOLDER [--frames 24] [--side 960] [--work DIR]
        [--tune] [--cosmos-native] [--json OUT]

FOLDER holds videos and a PROVENANCE.md whose markdown table has the columns
`file`, `kind` (overlay, subtitles, screen, scene, none) and `also` (other
kinds present, `-` for none), as ../shared/anchors/real-media-kinds does. The
clips are an argument, never committed.

For every clip: `kind_frames.detect_kind_frames` (the fast detector, PP-OCR,
on FRAMES evenly spaced frames scaled to SIDE), then `kinds.classify_video`
with `KindRules()` (or the rules given by --rule KEY=VALUE), and
`kinds.cosmos_overlay` on the same detections. Detections are cached in
WORK (keyed by the file's size and mtime, the frames and the side), so a
rerun only re-judges.

Printed (markdown): per clip, the label and the prediction; the confusion
table of the predicted main kind against the label; recall of overlay and
subtitle (a clip carries a kind when its `kind` or `also` names it; found
when that kind's ratio is above 0); false alarms (a kind found on clips that
do not carry it); the share of controls (`none`) with any text; and the same
overlay recall and false alarms for the Cosmos rule.

--tune: a small grid over the rules' main parameters, scored on these clips
(main kind right, then overlay and subtitle recall), and leave-one-out: for
each clip, the best parameters on the other clips judge it. A grid fitted on
18 clips overfits; the leave-one-out figure is the honest one.

--cosmos-native: also run the Cosmos rule as Cosmos samples (every 3rd frame,
long side 640), where its frame counts mean what they were written for.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # shared machine; set before NumPy / ONNX Runtime load

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from textsieve.detect.area import Detections  # noqa: E402
from textsieve.kinds import KINDS, KindRules, classify_video, cosmos_overlay  # noqa: E402

LABELS = {"subtitles": "subtitle", "subtitle": "subtitle", "overlay": "overlay", "screen": "screen",
          "scene": "scene", "none": "none"}
MAIN = list(KINDS) + ["none"]
# The grid --tune searches; each value list holds the default.
GRID: dict[str, list] = {
    "overlay_min_persistence": [0.15, 0.25, 0.4, 0.6],
    "edge_margin": [0.08, 0.12, 0.16],
    "subtitle_centre_tolerance": [0.03, 0.04, 0.06],
    "screen_min_lines": [2, 3],
    "screen_min_share": [0.02, 0.03, 0.05],
    "screen_title_height": [0.08, 0.1, 0.15],
}


@dataclass(frozen=True)
class Clip:
    file: str
    kind: str  # main label
    also: tuple[str, ...]

    def carries(self, kind: str) -> bool:
        return kind == self.kind or kind in self.also


@dataclass(frozen=True)
class Detected:
    frame_size: tuple[int, int]
    times: list[float]
    detections: list[Detections]
    seconds: float


def read_labels(folder: Path) -> list[Clip]:
    """The PROVENANCE.md table's file, kind and also columns."""
    path = folder / "PROVENANCE.md"
    if not path.is_file():
        sys.exit(f"{path}: no PROVENANCE.md; the folder needs a markdown table with file, kind and also columns")
    clips, header = [], None
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(cells[0]) <= set("-: "):
            continue
        row = dict(zip(header, cells))
        kind = LABELS.get(row.get("kind", "").lower())
        if kind is None:
            sys.exit(f"{path}: row {row.get('file')!r} has kind {row.get('kind')!r}; use one of {sorted(LABELS)}")
        also = tuple(LABELS[a.strip().lower()] for a in row.get("also", "-").split(",") if a.strip() not in ("", "-"))
        clips.append(Clip(row["file"], kind, also))
    return clips


PHOTOS = ("eo_chinese.jpg", "eo_english.png", "eo_french.jpg", "eo_japanese.jpg", "eo_korean.png", "eo_thai.jpg",
          "mp_vacation_2017.jpg")


def photo_pans(folder: Path, work: Path) -> tuple[Path, list[Clip]]:
    """Scene text with a moving camera, made from real photos of signs (the
    real-media folder's EasyOCR examples and a street photo): 3 s at 10 fps,
    640x360, a view that pans across the photo, zooms in and turns (the far
    side shrinks). The text is real; the camera motion is simulated. Written
    once into WORK/pans."""
    import av
    from PIL import Image

    out = work / "pans"
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    for name in PHOTOS:
        src = folder / name
        if not src.is_file():
            continue
        target = out / (Path(name).stem + "_pan.mp4")
        if not target.is_file():
            photo = Image.open(src).convert("RGB")
            w, h = photo.size
            with av.open(str(target), mode="w") as video:
                stream = video.add_stream("libx264", rate=10)
                stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
                for i in range(30):
                    t = i / 29
                    zoom = 1.0 - 0.25 * t  # the view narrows: zooming in
                    vw, vh = w * 0.75 * zoom, min(h, w * 0.75 * zoom * 9 / 16)
                    x0 = (w - vw) * t
                    y0 = (h - vh) / 2
                    skew = 0.08 * vh * (1 - 2 * abs(t - 0.5))  # turning: the right side shrinks, then recovers
                    quad = (x0, y0, x0, y0 + vh, x0 + vw, y0 + vh - skew, x0 + vw, y0 + skew)
                    frame = photo.transform((640, 360), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
                    for packet in stream.encode(av.VideoFrame.from_image(frame)):
                        video.mux(packet)
                for packet in stream.encode():
                    video.mux(packet)
        clips.append(Clip(target.name, "scene", ()))
    return out, clips


def _cached(cache_path: Path, folder: Path, clips: list[Clip], measure) -> dict[str, dict]:
    """``measure(path, detector)`` per clip, kept in ``cache_path`` by the
    file's size and mtime, so that a rerun only re-judges."""
    from textsieve.detect.ppocr import PpOcrDetector

    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    detector = None
    out = {}
    for clip in clips:
        path = folder / clip.file
        stat = path.stat()
        key = f"{clip.file}:{stat.st_size}:{int(stat.st_mtime)}"
        if key not in cache:
            detector = detector or PpOcrDetector(threads=1)
            cache[key] = measure(path, detector)
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache))
        out[clip.file] = cache[key]
    return out


def _detections(entry: dict) -> list[Detections]:
    return [Detections(horizontal=d["horizontal"], free=d["free"]) for d in entry["dets"]]


def detect_all(folder: Path, clips: list[Clip], frames: int, side: int, work: Path) -> dict[str, Detected]:
    from textsieve.kind_frames import detect_kind_frames

    def measure(path: Path, detector) -> dict:
        kf = detect_kind_frames(str(path), frames, detector, side=side, threads=1)
        return {"size": list(kf.frame_size), "times": kf.times, "seconds": kf.decode_s + kf.detect_s,
                "dets": [d.to_json() for d in kf.detections]}

    cached = _cached(work / f"kinds_ppocr_{frames}_{side}.json", folder, clips, measure)
    return {name: Detected((c["size"][0], c["size"][1]), c["times"], _detections(c), c["seconds"])
            for name, c in cached.items()}


def cosmos_native(folder: Path, clips: list[Clip], work: Path) -> dict[str, list[Detections]]:
    """Cosmos's own sampling: every 3rd decoded frame, long side 640 (cached)."""
    import av

    from textsieve.video.color import to_rgb
    from textsieve.video.frames import open_video, scaled_size

    def measure(path: Path, detector) -> dict:
        container = open_video(str(path))
        try:
            stream = container.streams.video[0]
            size = scaled_size(stream.codec_context.width, stream.codec_context.height, 640)
            dets = []
            for i, frame in enumerate(container.decode(stream)):
                if i % 3 == 0:
                    dets.extend(detector([to_rgb(frame, size, "dj")]))
        except av.error.FFmpegError as exc:
            sys.exit(f"{path}: decoding failed ({exc})")
        finally:
            container.close()
        return {"size": list(size), "dets": [d.to_json() for d in dets]}

    cached = _cached(work / "kinds_cosmos_native.json", folder, clips, measure)
    return {name: (tuple(c["size"]), _detections(c)) for name, c in cached.items()}


@dataclass(frozen=True)
class Judged:
    main: str
    found: dict[str, bool]  # kind -> ratio > 0
    ratios: dict[str, float]
    ratio: float


def judge(det: Detected, rules: KindRules) -> Judged:
    video = classify_video(det.detections, det.frame_size, det.times, rules)
    return Judged(video.main_kind, {k: video.ratios[k] > 0 for k in KINDS}, dict(video.ratios), video.ratio)


@dataclass(frozen=True)
class Score:
    main_right: int
    overlay_found: int
    subtitle_found: int
    false_alarms: int  # overlay or subtitle found on clips without it

    def key(self) -> tuple:
        return (self.main_right, self.overlay_found + self.subtitle_found, -self.false_alarms)


def score(clips: list[Clip], judged: dict[str, Judged]) -> Score:
    return Score(
        main_right=sum(judged[c.file].main == c.kind for c in clips),
        overlay_found=sum(judged[c.file].found["overlay"] for c in clips if c.carries("overlay")),
        subtitle_found=sum(judged[c.file].found["subtitle"] for c in clips if c.carries("subtitle")),
        false_alarms=sum(judged[c.file].found[k] for c in clips for k in ("overlay", "subtitle") if not c.carries(k)),
    )


def confusion(clips: list[Clip], predicted: dict[str, str], labels: list[str]) -> str:
    rows = ["| label \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for truth in labels:
        members = [c for c in clips if c.kind == truth]
        if not members:
            continue
        rows.append(f"| {truth} ({len(members)}) | "
                    + " | ".join(str(sum(predicted[c.file] == p for c in members) or ".") for p in labels) + " |")
    return "\n".join(rows)


def recall_line(clips: list[Clip], found: dict[str, bool], kind: str) -> str:
    carrying = [c for c in clips if c.carries(kind)]
    hits = sum(found[c.file] for c in carrying)
    alarms = [c for c in clips if not c.carries(kind) and found[c.file]]
    return (f"{kind}: recall {hits}/{len(carrying)} ({hits / max(1, len(carrying)):.0%}); "
            f"found on {len(alarms)}/{len(clips) - len(carrying)} clips without it"
            + (f" ({', '.join(c.file for c in alarms)})" if alarms else ""))


def tune(clips: list[Clip], detected: dict[str, Detected], base: KindRules) -> None:
    names = list(GRID)
    combos = [dict(zip(names, values)) for values in itertools.product(*GRID.values())]
    print(f"\n## Tuning: {len(combos)} parameter sets x {len(clips)} clips\n")
    start = time.perf_counter()
    table = []  # (params, {file: Judged})
    for params in combos:
        rules = base.model_copy(update=params)
        table.append((params, {c.file: judge(detected[c.file], rules) for c in clips}))
    print(f"(judged in {time.perf_counter() - start:.0f} s)\n")
    default = {n: getattr(base, n) for n in names}

    def best(subset: list[Clip]) -> tuple[dict, dict]:
        # ties go to the set closest to the defaults (fewest changed values)
        return max(table, key=lambda pj: (score(subset, pj[1]).key(),
                                          -sum(pj[0][n] != default[n] for n in names)))

    params, judged = best(clips)
    s = score(clips, judged)
    print(f"Best on all {len(clips)} (in-sample, a fit): {params}: main kind {s.main_right}/{len(clips)}, "
          f"overlay found {s.overlay_found}, subtitle found {s.subtitle_found}, false alarms {s.false_alarms}")
    ties = sum(score(clips, j).key() == s.key() for _, j in table)
    print(f"{ties} of {len(table)} parameter sets tie with it.")
    default_judged = next(j for p, j in table if p == default) if default in [p for p, _ in table] else None
    if default_judged is not None:
        d = score(clips, default_judged)
        print(f"Defaults {default}: main kind {d.main_right}/{len(clips)}, overlay found {d.overlay_found}, "
              f"subtitle found {d.subtitle_found}, false alarms {d.false_alarms}")
    # leave-one-out: each clip judged by the parameters best on the 17 others
    loo_right, loo_overlay, loo_subtitle, lines = 0, 0, 0, []
    for clip in clips:
        params, _ = best([c for c in clips if c is not clip])
        judged_clip = next(j for p, j in table if p == params)[clip.file]
        loo_right += judged_clip.main == clip.kind
        loo_overlay += clip.carries("overlay") and judged_clip.found["overlay"]
        loo_subtitle += clip.carries("subtitle") and judged_clip.found["subtitle"]
        changed = {n: v for n, v in params.items() if v != default[n]}
        lines.append(f"| {clip.file} | {clip.kind} | {judged_clip.main} | {changed or 'defaults'} |")
    n_over = sum(c.carries("overlay") for c in clips)
    n_sub = sum(c.carries("subtitle") for c in clips)
    print(f"\nLeave-one-out: main kind {loo_right}/{len(clips)} ({loo_right / len(clips):.0%}), "
          f"overlay recall {loo_overlay}/{n_over}, subtitle recall {loo_subtitle}/{n_sub}\n")
    print("| held-out clip | label | predicted | parameters chosen on the others (changed from defaults) |")
    print("|---|---|---|---|")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="clips and their PROVENANCE.md (e.g. ../shared/anchors/real-media-kinds)")
    ap.add_argument("--frames", type=int, default=24, help="kind_frames: frames per clip for the kind analysis")
    ap.add_argument("--side", type=int, default=960, help="long side the kind frames are scaled to")
    ap.add_argument("--work", type=Path, default=Path("bench/work/kinds"), help="detection cache")
    ap.add_argument("--rule", action="append", default=[], metavar="KEY=VALUE", help="a KindRules value")
    ap.add_argument("--tune", action="store_true", help="grid and leave-one-out over the rules' parameters")
    ap.add_argument("--cosmos-native", action="store_true", help="also the Cosmos rule on every 3rd frame at 640")
    ap.add_argument("--photo-pans", type=Path, metavar="FOLDER",
                    help="also judge pans over the real photos of signs in FOLDER (e.g. ../shared/anchors/real-media)"
                         " as scene text; reported apart, never tuned on")
    ap.add_argument("--json", type=Path, help="write every clip's ratios here")
    args = ap.parse_args()

    clips = [c for c in read_labels(args.folder) if (args.folder / c.file).is_file()]
    if not clips:
        sys.exit(f"{args.folder}: no labelled clip found")
    overrides = {}
    for item in args.rule:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    rules = KindRules(**overrides)
    start = time.perf_counter()
    detected = detect_all(args.folder, clips, args.frames, args.side, args.work)
    print(f"# Kinds of text on {len(clips)} clips of {args.folder}\n")
    print(f"Fast detector (PP-OCR) on {args.frames} frames per clip at long side {args.side}; rules {rules!r}")
    print(f"Detection (cached where seen before): {sum(d.seconds for d in detected.values()):.0f} s when run; "
          f"this run {time.perf_counter() - start:.0f} s\n")

    judged = {c.file: judge(detected[c.file], rules) for c in clips}
    cosmos = {c.file: cosmos_overlay(detected[c.file].detections, detected[c.file].frame_size) for c in clips}
    print("| clip | label | also | main kind | overlay | subtitle | screen | scene | all | Cosmos overlay "
          "(longest track, corner share) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in clips:
        j, v = judged[c.file], cosmos[c.file]
        print(f"| {c.file} | {c.kind} | {','.join(c.also) or '-'} | {j.main} | "
              + " | ".join(f"{j.ratios[k]:.4f}" for k in KINDS)
              + f" | {j.ratio:.4f} | {'yes' if v.overlay else 'no'} ({v.longest_track}, {v.corner_frame_share:.2f}) |")

    labelled = [c for c in clips]
    right = sum(judged[c.file].main == c.kind for c in labelled)
    print(f"\n## Main kind: {right}/{len(labelled)} right ({right / len(labelled):.0%})\n")
    print(confusion(labelled, {f: j.main for f, j in judged.items()}, MAIN))
    print()
    for kind in ("overlay", "subtitle", "screen"):
        print("- " + recall_line(clips, {f: j.found[kind] for f, j in judged.items()}, kind))
    controls = [c for c in clips if c.kind == "none"]
    with_text = [c.file for c in controls if judged[c.file].ratio > 0]
    print(f"- controls with any text: {len(with_text)}/{len(controls)}" + (f" ({', '.join(with_text)})" if with_text else ""))

    print("\n## Baseline: Cosmos-Curate's overlay rule on the same detections\n")
    print("- " + recall_line(clips, {f: v.overlay for f, v in cosmos.items()}, "overlay"))
    ours = {f: j.found["overlay"] for f, j in judged.items()}
    print("- (ours, overlay ratio > 0) " + recall_line(clips, ours, "overlay"))
    strict = {f: j.ratios["overlay"] > 0.002 for f, j in judged.items()}
    print("- (ours, overlay ratio > 0.002, the recipe's max_overlay_ratio) " + recall_line(clips, strict, "overlay"))
    if args.cosmos_native:
        native = cosmos_native(args.folder, clips, args.work)
        verdicts = {f: cosmos_overlay(d, size) for f, (size, d) in native.items()}
        print("\n## Baseline as Cosmos samples (every 3rd frame, long side 640)\n")
        print("- " + recall_line(clips, {f: v.overlay for f, v in verdicts.items()}, "overlay"))
        print("  " + "; ".join(f"{f}: {'yes' if v.overlay else 'no'} ({v.longest_track}, {v.corner_frame_share:.2f})"
                               for f, v in verdicts.items()))
    if args.photo_pans:
        pans_dir, pans = photo_pans(args.photo_pans, args.work)
        pan_detected = detect_all(pans_dir, pans, args.frames, args.side, args.work)
        print(f"\n## Scene text with a simulated camera: pans over {len(pans)} real photos of {args.photo_pans}\n")
        print("| clip | main kind | overlay | subtitle | screen | scene | all |")
        print("|---|---|---|---|---|---|---|")
        for c in pans:
            j = judge(pan_detected[c.file], rules)
            print(f"| {c.file} | {j.main} | " + " | ".join(f"{j.ratios[k]:.4f}" for k in KINDS) + f" | {j.ratio:.4f} |")
    if args.tune:
        tune(clips, detected, rules)
    if args.json:
        args.json.write_text(json.dumps({f: {"main": j.main, "ratios": j.ratios, "ratio": j.ratio,
                                             "cosmos": cosmos[f].overlay} for f, j in judged.items()}, indent=1))


if __name__ == "__main__":
    main()
