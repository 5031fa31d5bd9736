"""Colour parity: textsieve's default frames against Data-Juicer's pinned
PyAV 13.1 ``np.asarray(frame.to_image())`` of the same frames.

    python bench/bench_color.py /work/shared/anchors/real-media /work/shared/anchors/real-media-kinds \\
        /work/shared/anchors/dj-test-videos --av13 /tmp/av13/bin/python [--ratios]

textsieve samples every video in the given folders (and streams this script
encodes with each colour tag: BT.709, BT.601/SMPTE 170M, BT.470BG, BT.2020,
unspecified; limited and full range; 8-bit and 10-bit yuv420p10le; H.264 and
VP9) under this interpreter's PyAV; the ``--av13`` interpreter (a venv with
only ``av==13.1.0 numpy pillow``) decodes the same frames and writes
``to_image()`` as .npy files, with textsieve's own conversion run there too.
Per folder: clips, clips bit-identical, largest level difference, colour
tags. Then the 10-bit question: does any reformat argument of this PyAV
reproduce 13.1 there? ``--ratios``: CRAFT's ratio on the BT.709-tagged real
clips from textsieve's default frames, from 13.1's frames and from
``color_conversion: tagged`` (CRAFT on CPU: seconds per frame).

The folders are arguments: nothing here names media, and nothing is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from textsieve.video.color import to_rgb
from textsieve.video.frames import sample_video

VIDEO_SUFFIXES = {".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif"}
W, H, N = 160, 96, 6
# name: (codec, pix_fmt, colorspace, primaries, trc, range) as FFmpeg's AVCOL_* numbers
STREAMS = {
    "bt709_limited": ("libx264", "yuv420p", 1, 1, 1, 1),
    "bt709_full": ("libx264", "yuv420p", 1, 1, 1, 2),
    "smpte170m_limited": ("libx264", "yuv420p", 6, 6, 6, 1),
    "bt470bg_limited": ("libx264", "yuv420p", 5, 5, 6, 1),
    "bt2020_limited": ("libx264", "yuv420p", 9, 9, 14, 1),
    "unspecified": ("libx264", "yuv420p", 2, 2, 2, 0),
    "unspecified_full": ("libx264", "yuv420p", 2, 2, 2, 2),
    "vp9_bt709_limited": ("libvpx-vp9", "yuv420p", 1, 1, 1, 1),
    "vp9_bt709_full": ("libvpx-vp9", "yuv420p", 1, 1, 1, 2),  # VP9 keeps yuv420p + a full-range tag
    "10bit_bt709_limited": ("libx264", "yuv420p10le", 1, 1, 1, 1),
    "10bit_bt709_full": ("libx264", "yuv420p10le", 1, 1, 1, 2),
    "10bit_smpte170m_limited": ("libx264", "yuv420p10le", 6, 6, 6, 1),
    "10bit_unspecified": ("libx264", "yuv420p10le", 2, 2, 2, 0),
    "10bit_unspecified_full": ("libx264", "yuv420p10le", 2, 2, 2, 2),
}
SPC = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc"}
RNG = {0: "unspecified", 1: "limited", 2: "full"}

AV13_SCRIPT = r"""
import json, sys
from fractions import Fraction
import av, numpy as np
from textsieve.video.color import to_rgb
jobs = json.load(open(sys.argv[1]))
for job in jobs:
    want = [Fraction(t) for t in job["times"]]
    got = {}
    with av.open(job["path"], metadata_errors="ignore") as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            t = f.pts * Fraction(s.time_base)
            if t in want and t not in got:
                got[t] = (np.asarray(f.to_image()), to_rgb(f))
            if len(got) == len(want):
                break
    np.save(job["out"] + ".dj.npy", np.stack([got[t][0] for t in want]))
    np.save(job["out"] + ".ts.npy", np.stack([got[t][1] for t in want]))
print(av.__version__, av.library_versions["libswscale"])
"""


def picture(i: int) -> np.ndarray:
    """Saturated gradients, a noise patch and flat blocks: every matrix and
    chroma difference shows somewhere."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([(x * 255 // W + 40 * i) % 256, y * 255 // H, ((x + y) * 2 + 17 * i) % 256], -1).astype(np.uint8)
    img[10:40, 10:70] = rng.integers(0, 256, (30, 60, 3), dtype=np.uint8)
    img[50:90, 80:120] = (230, 20, 20)
    img[50:90, 120:156] = (20, 40, 220)
    return img


def encode_streams(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (codec, pix, spc, pri, trc, rng) in STREAMS.items():
        path = folder / f"{name}.{'webm' if 'vp9' in codec else 'mp4'}"
        if path.exists():
            continue
        with av.open(str(path), "w") as out:
            s = out.add_stream(codec, rate=10)
            s.width, s.height, s.pix_fmt = W, H, pix
            cc = s.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = spc, pri, trc, rng
            for i in range(N):
                frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24").reformat(format=pix)
                frame.pts = i
                out.mux(s.encode(frame))
            out.mux(s.encode())
        with av.open(str(path)) as c:  # the tag is in the stream, or the row would lie
            f = next(c.decode(video=0))
            if int(f.colorspace) != spc:
                raise SystemExit(f"{path}: encoded colorspace {int(f.colorspace)}, wanted {spc}")
    return folder


def tags(path: str) -> str:
    with av.open(path, metadata_errors="ignore") as c:
        f = next(c.decode(video=0))
        return f"{f.format.name} {SPC.get(int(f.colorspace), int(f.colorspace))}/{RNG.get(int(f.color_range))}"


def videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def ten_bit_candidates() -> dict:
    """Every reformat argument that might reproduce 13.1 on 10-bit video."""
    def conv(**kw):
        return lambda f: f.to_ndarray(format="rgb24", **kw)

    rng = lambda f: "JPEG" if int(f.color_range) == 2 else "MPEG"
    out = {"plain": conv(), "dj (textsieve default)": to_rgb}
    for interp in ("FAST_BILINEAR", "BILINEAR", "BICUBIC", "X", "POINT", "AREA", "BICUBLIN", "GAUSS", "SINC",
                   "LANCZOS", "SPLINE"):
        out[f"ITU601 + {interp}"] = conv(src_colorspace="ITU601", interpolation=interp)
    for flags in ("ACCURATE_RND", "FULL_CHR_H_INT", "FULL_CHR_H_INP", "BITEXACT", "ERROR_DIFFUSION"):
        out[f"ITU601 + BILINEAR|{flags}"] = conv(src_colorspace="ITU601", interpolation=_interp(f"BILINEAR|{flags}"))
    out["ITU601 + tag's range"] = lambda f: f.to_ndarray(format="rgb24", src_colorspace="ITU601", src_color_range=rng(f))
    out["ITU601 + MPEG range"] = conv(src_colorspace="ITU601", src_color_range="MPEG")
    out["ITU601 + JPEG range"] = conv(src_colorspace="ITU601", src_color_range="JPEG")
    for mid in ("yuv420p", "yuv444p10le", "yuv444p16le", "gbrp10le"):
        out[f"via {mid}"] = (lambda m: lambda f: f.reformat(format=m, src_colorspace="ITU601", dst_colorspace="ITU601")
                             .to_ndarray(format="rgb24", src_colorspace="ITU601"))(mid)
    return out


def _interp(value: str):
    from av.video.reformatter import Interpolation

    names = value.split("|")
    flag = Interpolation[names[0]]
    for name in names[1:]:
        flag |= Interpolation[name]
    return flag


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="folders of real videos (each with a PROVENANCE.md)")
    ap.add_argument("--av13", default="/tmp/av13/bin/python", help="a Python with av==13.1.0, numpy and pillow")
    ap.add_argument("--work", type=Path, default=Path("bench/work/color"))
    ap.add_argument("--frames", type=int, default=3, help="frame_sample_num (default 3, Data-Juicer's)")
    ap.add_argument("--ratios", action="store_true", help="CRAFT ratios on the BT.709-tagged real clips")
    args = ap.parse_args()
    work = args.work.resolve()
    (work / "npy").mkdir(parents=True, exist_ok=True)
    groups = {str(f): videos(f) for f in args.folders}
    groups["encoded here (8-bit)"] = [p for p in videos(encode_streams(work / "encoded")) if "10bit" not in p.name]
    groups["encoded here (10-bit)"] = [p for p in videos(work / "encoded") if "10bit" in p.name]

    ours: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    jobs, skipped = [], {}
    for group, paths in groups.items():
        for path in paths:
            try:
                sampled = sample_video(str(path), args.frames)
                tagged = sample_video(str(path), args.frames, color_conversion="tagged")
            except Exception as exc:  # a file textsieve refuses is reported, not compared
                skipped[str(path)] = str(exc)
                continue
            key = f"{len(jobs):03d}_{path.stem}"
            ours[str(path)] = (sampled.images, tagged.images)
            # exact times as fractions: the 13.1 side picks the same pts
            with av.open(str(path), metadata_errors="ignore") as c:
                tb = c.streams.video[0].time_base
            times = [str(_exact(t, tb)) for t in sampled.times]
            jobs.append({"path": str(path), "times": times, "out": str(work / "npy" / key), "group": group})
    (work / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([args.av13, "-c", AV13_SCRIPT, str(work / "jobs.json")], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise SystemExit(f"{args.av13} failed decoding the frames: {done.stderr[-2000:]}\n"
                         "make it with: python3 -m venv /tmp/av13 && /tmp/av13/bin/pip install av==13.1.0 numpy pillow")
    print(f"PyAV here {av.__version__} (libswscale {av.library_versions['libswscale']}); "
          f"reference PyAV {done.stdout.split()[0]} (libswscale {' '.join(done.stdout.split()[1:])})\n")

    rows: dict[str, dict] = defaultdict(lambda: {"clips": 0, "identical": 0, "max": 0, "tags": defaultdict(int),
                                                 "ts13": 0, "tagged_max": 0})
    per_clip = []
    for job in jobs:
        dj = np.load(job["out"] + ".dj.npy").astype(int)
        ts13 = np.load(job["out"] + ".ts.npy").astype(int)
        default, tagged = (np.stack(x).astype(int) for x in ours[job["path"]])
        diff = int(np.abs(default - dj).max())
        row = rows[job["group"]]
        row["clips"] += 1
        row["identical"] += diff == 0
        row["max"] = max(row["max"], diff)
        row["ts13"] += int(np.array_equal(ts13, dj))
        tagged_diff = int(np.abs(tagged - dj).max())
        row["tagged_max"] = max(row["tagged_max"], tagged_diff)
        tag = tags(job["path"])
        row["tags"][tag.split(" ", 1)[1]] += 1
        per_clip.append((job["group"], Path(job["path"]).name, tag, diff, int(np.mean(default != dj) * 1e4) / 1e4,
                         tagged_diff))

    print("| folder | clips | bit-identical to 13.1's to_image() (default, PyAV here) | max abs level difference | "
          "textsieve's default under 13.1 identical | `tagged` differs from 13.1 by (max) | colour tags (count) |")
    print("|---|---|---|---|---|---|---|")
    for group, row in rows.items():
        tag_text = ", ".join(f"{t} ({n})" for t, n in sorted(row["tags"].items()))
        print(f"| {Path(group).name if '/' in group else group} | {row['clips']} | {row['identical']} | {row['max']} | "
              f"{row['ts13']}/{row['clips']} | {row['tagged_max']} | {tag_text} |")
    print("\nPer clip: folder, file, pixel format colorspace/range, max |default - 13.1|, share of values differing, "
          "max |tagged - 13.1|")
    for item in per_clip:
        print("  " + " | ".join(str(x) for x in item))
    for path, why in skipped.items():
        print(f"  skipped {path}: {why}")

    print("\n10-bit: each candidate conversion here against 13.1's to_image(), worst over the 10-bit streams")
    cands = ten_bit_candidates()
    results = {}
    for job in (j for j in jobs if "10bit" in j["path"]):
        dj = np.load(job["out"] + ".dj.npy").astype(int)
        frames = _frames(job["path"], job["times"])
        for name, fn in cands.items():
            try:
                got = np.stack([fn(f) for f in frames]).astype(int)
                d = np.abs(got - dj)
                best = results.get(name, (0, 0.0))
                results[name] = (max(best[0], int(d.max())), max(best[1], float(d.mean())))
            except Exception as exc:  # an argument this PyAV does not take
                results[name] = (-1, str(exc))
    print("| conversion | max abs difference | mean abs difference (worst stream) |\n|---|---|---|")
    for name, (mx, mean) in sorted(results.items(), key=lambda kv: kv[1][0]):
        print(f"| {name} | {mx} | {mean if isinstance(mean, str) else f'{mean:.3f}'} |")

    if args.ratios:
        _ratios(jobs, ours)


def _exact(t: float, time_base) -> "Fraction":
    from fractions import Fraction

    tb = Fraction(time_base)
    return round(Fraction(t) / tb) * tb


def _frames(path: str, times: list[str]) -> list[av.VideoFrame]:
    from fractions import Fraction

    want, got = [Fraction(t) for t in times], {}
    with av.open(path) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            t = f.pts * Fraction(s.time_base)
            if t in want:
                got.setdefault(t, f)
    return [got[t] for t in want]


def _ratios(jobs: list[dict], ours: dict) -> None:
    """CRAFT on the BT.709-tagged real clips: textsieve's default frames,
    13.1's frames, and `tagged` frames, through the same detector."""
    from textsieve.detect.area import frame_text_ratio
    from textsieve.detect.craft import CraftDetector

    detector = CraftDetector("cpu")

    def ratio(images) -> float:
        return float(np.mean([frame_text_ratio(d, im.shape[1], im.shape[0], "dj")
                              for im, d in zip(images, detector(list(images)))]))

    print("\nCRAFT ratios on the BT.709-tagged real clips (same detector, CPU)")
    print("| clip | from 13.1's frames | textsieve default | abs difference | `tagged` | abs difference |\n|---|---|---|---|---|---|")
    worst = worst_tagged = 0.0
    for job in jobs:
        if job["group"].startswith("encoded") or " bt709/" not in tags(job["path"]):
            continue
        reference = ratio(list(np.load(job["out"] + ".dj.npy")))
        default, tagged = ours[job["path"]]
        a, b = ratio(default), ratio(tagged)
        worst, worst_tagged = max(worst, abs(a - reference)), max(worst_tagged, abs(b - reference))
        print(f"| {Path(job['path']).name} | {reference:.6f} | {a:.6f} | {abs(a - reference):.1e} | {b:.6f} | "
              f"{abs(b - reference):.1e} |")
    print(f"\nlargest |default - 13.1| {worst:.1e}; largest |tagged - 13.1| {worst_tagged:.1e}")


if __name__ == "__main__":
    main()
