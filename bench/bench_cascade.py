"""The cascade and the fast detector against CRAFT alone, as a user runs them:
decisions and whole-run speed, on real footage and on the synthetic set.

    python bench/bench_cascade.py --real FOLDER [FOLDER ...] --work DIR [--synthetic 200] [--calibrate 100]

Two sets:
- real: the videos and photos of each FOLDER (photos looped into 2 s clips)
  and scikit-image's bundled photos, as bench/eval_real.py collects them;
- synthetic: the 200 benchmark clips of bench/bench_dj.py (360p-1080p, no
  text, captions, subtitles, slides, moving tickers).

Per set, every run is `textsieve run` or `textsieve calibrate` as a user
types it (start-up, model loading, decoding and writing included):
- CRAFT on the whole set: the reference decisions and the reference time;
- `--detector ppocr` alone, uncalibrated: its decisions, and its ratios on
  the clips CRAFT finds text-free (below 0.005);
- the cascade with a calibration fitted on the set itself (`textsieve
  calibrate --detector cascade` on --calibrate videos: all of a smaller set),
  at max_area_ratio 0.02, 0.05 and 0.1;
- held out (`--folds 2`): the set cut in two at random, each half judged by
  a cascade calibrated on the other half only: the decisions a user gets on
  videos the calibration never saw.

A decision agrees when keep/drop at `ratio <= t` equals CRAFT's. The
speed-up is CRAFT's wall time over the cascade's. The share of videos sent
to CRAFT explains it: with the fast pass costing a fraction f of CRAFT's
time, a share s sent to CRAFT gives about 1 / (f + s). Finished runs are
reused (delete a folder under --work to measure it again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_dj import make_dataset  # noqa: E402
from eval_real import TEXT_FREE, collect_clips  # noqa: E402

THRESHOLDS = (0.02, 0.05, 0.1)


def textsieve(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "textsieve.cli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"textsieve {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def run(export: Path, *args: str) -> float:
    """A finished run's wall time as it reports it."""
    if not (export / "summary.json").exists():
        textsieve("run", *args, "--export", str(export))
    return json.loads((export / "summary.json").read_text())["wall_s"]


def videos(export: Path) -> dict[str, dict]:
    """Each judged video's stats in a finished run, by path."""
    out = {}
    for line in (export / "stats.jsonl").read_text().splitlines():
        for video in json.loads(line)["videos"]:
            out[video["video"]] = video
    return out


def calibrate(dataset: Path, folder: Path, samples: int) -> Path:
    calibration = folder / "calibration.json"
    if not calibration.exists():
        # --force: the bench measures the cascade whatever the gate says; the
        # held-out agreement calibrate printed is kept in the file's report
        textsieve("calibrate", "--dataset", str(dataset), "--export", str(folder / "cal"), "--detector", "cascade",
                  "--samples", str(samples), "--out", str(calibration), "--max-area-ratio", "0.05", "--force")
    return calibration


def compare(got: dict[str, dict], craft: dict[str, dict], t: float) -> list[dict]:
    return [{"video": Path(v).name, "craft": round(craft[v]["ratio"], 4), "got": round(g["ratio"], 4),
             "decided_by": g.get("decided_by", "")}
            for v, g in got.items() if (g["ratio"] <= t) != (craft[v]["ratio"] <= t)]


def cascade_runs(dataset: Path, calibration: Path, folder: Path, craft: dict[str, dict]) -> dict:
    out = {}
    for t in THRESHOLDS:
        export = folder / f"cascade-{t:g}"
        wall = run(export, "--dataset", str(dataset), "--detector", "cascade", "--calibration", str(calibration),
                   "--max-area-ratio", f"{t:g}")
        got = videos(export)
        sent = sum(g["decided_by"] == "craft" for g in got.values())
        out[f"{t:g}"] = {"agree": len(got) - len(compare(got, craft, t)), "of": len(got),
                         "disagreements": compare(got, craft, t), "sent_to_craft": sent, "wall_s": wall,
                         "why_sent": json.loads((export / "summary.json").read_text())["ratios"]["cascade"]["why_sent"]}
    return out


def bench_set(name: str, dataset: Path, work: Path, calibrate_samples: int, folds: int) -> dict:
    folder = work / name
    base = ["--dataset", str(dataset)]
    craft_wall = run(folder / "craft", *base)
    craft = videos(folder / "craft")
    ppocr_wall = run(folder / "ppocr", *base, "--detector", "ppocr")
    ppocr = videos(folder / "ppocr")
    text_free = {v: ppocr[v]["ratio"] for v in craft if craft[v]["ratio"] < TEXT_FREE}
    calibration = calibrate(dataset, folder, calibrate_samples)
    fitted = json.loads(calibration.read_text())
    result = {"videos": len(craft), "craft_wall_s": craft_wall, "ppocr_wall_s": ppocr_wall,
              "ppocr": {f"{t:g}": {"agree": len(craft) - len(compare(ppocr, craft, t)), "disagreements": compare(ppocr, craft, t)}
                        for t in THRESHOLDS},
              "text_free": len(text_free), "text_free_over_0.05": sorted(Path(v).name for v, r in text_free.items() if r > 0.05),
              "text_free_worst": max(text_free.items(), key=lambda kv: kv[1], default=("", 0.0)),
              "calibrated_on": fitted["fitted_on"]["videos"], "calibration_report": fitted["report"]["cascade_held_out"],
              "in_sample": cascade_runs(dataset, calibration, folder, craft)}
    if folds > 1:
        rows = dataset.read_text().splitlines()
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        parts = [sorted(order[i::folds]) for i in range(folds)]
        held: dict[str, dict] = {}
        for k, part in enumerate(parts):
            fold = folder / f"fold{k}"
            fold.mkdir(parents=True, exist_ok=True)
            judged, fitted_on = fold / "judged.jsonl", fold / "fitted_on.jsonl"
            judged.write_text("".join(rows[i] + "\n" for i in part))
            fitted_on.write_text("".join(rows[i] + "\n" for i in order if i not in part))
            cal = calibrate(fitted_on, fold, calibrate_samples)
            for t, r in cascade_runs(judged, cal, fold, craft).items():
                total = held.setdefault(t, {"agree": 0, "of": 0, "disagreements": [], "sent_to_craft": 0})
                for key in ("agree", "of", "sent_to_craft"):
                    total[key] += r[key]
                total["disagreements"] += r["disagreements"]
        result["held_out"] = held
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
    parser.add_argument("--folds", type=int, default=2, help="held-out folds (1: none)")
    parser.add_argument("--sets", nargs="+", default=["real", "synthetic"])
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    makers = {"real": lambda: real_dataset(args.real, args.work),
              "synthetic": lambda: make_dataset(args.work / "dj200", args.synthetic, 0)}
    results = {name: bench_set(name, makers[name](), args.work, args.calibrate, args.folds) for name in args.sets}
    (args.work / "cascade.json").write_text(json.dumps(results, indent=2))
    print(f"# cascade and ppocr vs CRAFT, {date.today()}, {platform.machine()}, {os.cpu_count()} cores\n")
    print("| set | videos | run | threshold | same decision as CRAFT | sent to CRAFT | wall | speed-up vs CRAFT |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        n, craft_wall = r["videos"], r["craft_wall_s"]
        print(f"| {name} | {n} | craft | - | - | - | {craft_wall:.0f} s | 1.0x |")
        for t, x in r["ppocr"].items():
            print(f"| {name} | {n} | ppocr alone | {t} | {x['agree']}/{n} | - | {r['ppocr_wall_s']:.0f} s | "
                  f"{craft_wall / r['ppocr_wall_s']:.1f}x |")
        for t, x in r["in_sample"].items():
            print(f"| {name} | {n} | cascade, calibrated on the set ({r['calibrated_on']} videos) | {t} | "
                  f"{x['agree']}/{x['of']} | {100 * x['sent_to_craft'] / x['of']:.0f}% | {x['wall_s']:.0f} s | "
                  f"{craft_wall / x['wall_s']:.1f}x |")
        for t, x in r.get("held_out", {}).items():
            print(f"| {name} | {n} | cascade, held out ({args.folds} folds) | {t} | {x['agree']}/{x['of']} | "
                  f"{100 * x['sent_to_craft'] / x['of']:.0f}% | - | - |")
    print()
    for name, r in results.items():
        worst = r["text_free_worst"]
        print(f"- {name}: ppocr alone on the {r['text_free']} text-free clips (CRAFT < {TEXT_FREE}): worst "
              f"{worst[1]:.3f} ({Path(worst[0]).name}); over 0.05: {r['text_free_over_0.05'] or 'none'}")
        for how in ("ppocr", "in_sample", "held_out"):
            for t, x in r.get(how, {}).items():
                for d in x["disagreements"]:
                    print(f"- {name}, {how} at {t}: {d['video']} CRAFT {d['craft']} got {d['got']} {d['decided_by']}")
        for t, x in r["in_sample"].items():
            print(f"- {name} at {t}: sent to CRAFT because {x['why_sent']}")


if __name__ == "__main__":
    main()
