"""The cascade against CRAFT alone, as a user runs both: decisions and whole-run speed.

    python bench/bench_cascade.py --real FOLDER [FOLDER ...] --work DIR [--synthetic 200] [--calibrate 100]

Two sets:
- real: the videos and photos of each FOLDER (photos looped into 2 s clips)
  and scikit-image's bundled photos, as bench/eval_real.py collects them;
- synthetic: the 200 benchmark clips of bench/bench_dj.py (360p-1080p, no
  text, captions, subtitles, slides, moving tickers).

Per set: `textsieve calibrate --detector cascade` on a random sample of
--calibrate videos (all of a set smaller than that), `textsieve run` with
CRAFT on the whole set, then `textsieve run --detector cascade` at
max_area_ratio 0.02, 0.05 and 0.1. Each cascade decision is compared with
CRAFT's at the same threshold (from CRAFT's ratios), and the whole-run
speed-up is CRAFT's wall time over the cascade's, both as `textsieve run`
reports it (model loading, decoding and writing included). The share of
videos sent to CRAFT explains the speed-up: with the fast pass costing a
fraction f of CRAFT's time, a share s sent to CRAFT gives about
1 / (f + s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_dj import make_dataset  # noqa: E402
from eval_real import collect_clips  # noqa: E402

THRESHOLDS = (0.02, 0.05, 0.1)


def textsieve(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "textsieve.cli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"textsieve {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def run(export: Path, *args: str) -> float:
    """A finished run's wall time as it reports it (start-up, model loading,
    decoding, writing included); an earlier finished run of the same
    command is reused (delete the folder to measure again)."""
    if not (export / "summary.json").exists():
        textsieve("run", *args, "--export", str(export))
    summary = json.loads((export / "summary.json").read_text())
    return summary.get("wall_s") or summary["this_session"]["wall_s"]


def ratios(export: Path) -> dict[str, float]:
    """Each video's ratio in a finished run."""
    out = {}
    for line in (export / "stats.jsonl").read_text().splitlines():
        for video in json.loads(line)["videos"]:
            out[video["video"]] = video
    return out


def bench_set(name: str, dataset: Path, work: Path, calibrate_samples: int) -> dict:
    folder = work / name
    base = ["--dataset", str(dataset)]
    calibration = folder / "calibration.json"
    if not calibration.exists():
        textsieve("calibrate", *base, "--export", str(folder / "cal"), "--detector", "cascade", "--samples",
                  str(calibrate_samples), "--out", str(calibration), "--max-area-ratio", "0.05", "--force")
    report = json.loads(calibration.read_text())["report"]
    craft_wall = run(folder / "craft", *base)
    craft = ratios(folder / "craft")
    result = {"videos": len(craft), "craft_wall_s": round(craft_wall, 1),
              "calibrated_on": json.loads(calibration.read_text())["fitted_on"]["videos"],
              "calibration_cascade_held_out": report["cascade_held_out"], "thresholds": {}}
    for t in THRESHOLDS:
        export = folder / f"cascade-{t:g}"
        wall = run(export, *base, "--detector", "cascade", "--calibration", str(calibration),
                   "--max-area-ratio", f"{t:g}")
        got = ratios(export)
        wrong = [{"video": Path(v).name, "craft": round(craft[v]["ratio"], 4), "cascade": round(g["ratio"], 4),
                  "decided_by": g["decided_by"]}
                 for v, g in got.items() if (g["ratio"] <= t) != (craft[v]["ratio"] <= t)]
        sent = sum(g["decided_by"] == "craft" for g in got.values())
        result["thresholds"][f"{t:g}"] = {
            "agree": len(got) - len(wrong), "of": len(got), "disagreements": wrong,
            "sent_to_craft": sent, "share_sent": round(sent / len(got), 3), "wall_s": round(wall, 1),
            "speed_up": round(craft_wall / wall, 2),
            "why_sent": json.loads((export / "summary.json").read_text())["ratios"]["cascade"]["why_sent"]}
    return result


def real_dataset(folders: list[Path], work: Path) -> Path:
    clips = [c for c in collect_clips(folders, work) if c.group in ("real", "skimage")]
    path = work / "real.jsonl"
    path.write_text("".join(json.dumps({"id": c.name, "videos": [str(c.path.resolve())]}) + "\n" for c in clips))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", nargs="+", type=Path, required=True, help="folders of real clips and photos")
    parser.add_argument("--work", type=Path, default=Path("bench-work"))
    parser.add_argument("--synthetic", type=int, default=200, help="benchmark clips (bench_dj.py's set)")
    parser.add_argument("--calibrate", type=int, default=100, help="videos drawn for calibration, per set")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sets = {"real": real_dataset(args.real, args.work),
            "synthetic": make_dataset(args.work / "dj200", args.synthetic, 0)}
    results = {name: bench_set(name, path, args.work, args.calibrate) for name, path in sets.items()}
    (args.work / "cascade.json").write_text(json.dumps(results, indent=2))
    print(f"# cascade vs CRAFT, {date.today()}, {platform.machine()}, {os.cpu_count()} cores\n")
    print("| set | videos (calibrated on) | threshold | same decision as CRAFT | sent to CRAFT | CRAFT wall | cascade wall | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        for t, x in r["thresholds"].items():
            print(f"| {name} | {r['videos']} ({r['calibrated_on']}) | {t} | {x['agree']}/{x['of']} | "
                  f"{100 * x['share_sent']:.0f}% | {r['craft_wall_s']:.0f} s | {x['wall_s']:.0f} s | {x['speed_up']:.1f}x |")
    for name, r in results.items():
        for t, x in r["thresholds"].items():
            for d in x["disagreements"]:
                print(f"- {name} at {t}: {d['video']} CRAFT {d['craft']} cascade {d['cascade']} ({d['decided_by']})")
            print(f"- {name} at {t}: sent to CRAFT because {x['why_sent']}")


if __name__ == "__main__":
    main()
