"""Issue 25's side-by-side: Data-Juicer, CRAFT, CRAFT in bf16, the cascade
and PP-OCR on each real folder, in one session, the cascade held out.

    nice python bench/bench_heldout.py FOLDER [FOLDER ...] [--work DIR] [--no-dj]

Each FOLDER's video files are one dataset, one sample each (folders are
arguments: nothing here names media, nothing is committed). Per folder, as
a user runs them, one after the other:

- `dj-process` (np 1, Data-Juicer's fastest on 2 cores: bench/RESULTS.md)
  with `video_ocr_area_ratio_filter` at min 0, max 1 (it keeps every
  sample with its stats), in Data-Juicer's own venv (bench_dj.py installs it);
- `textsieve run` with `--detector craft`: Data-Juicer's ratios, the reference
  for every decision below;
- `--precision bf16`: CRAFT under torch autocast;
- `--detector ppocr`, uncalibrated;
- the cascade, held out: `textsieve calibrate --detector cascade` on the
  OTHER folders' videos (all of them, at most 200), so that no video is judged by a
  calibration that saw it, then `--detector cascade` at `max_area_ratio`
  0.02, 0.05 and 0.1; and the same with `--precision bf16` (CRAFT's re-judging
  in bf16).

A decision is keep/drop at `ratio <= t`; it agrees when it equals CRAFT's.
Speed is Data-Juicer's wall over the run's, in the same session. The
calibration's cost is its own wall time (both passes over the other folders).
Finished runs are reused (delete a folder under --work to measure it again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_dj import dj_env, dj_ratios, recipe, timed  # noqa: E402

THRESHOLDS = (0.02, 0.05, 0.1)
VIDEO_SUFFIXES = {".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".ts", ".m4v"}


def dataset(folder: Path, out: Path) -> Path:
    rows = [{"id": p.name, "text": f"<__dj__video> {p.stem}", "videos": [str(p.resolve())]}
            for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def textsieve(log: Path, *args: str) -> float:
    """One textsieve command as a user types it; its wall time (kept in a file, so a rerun reuses it)."""
    wall_file = log.with_suffix(".wall")
    if wall_file.exists():
        return float(wall_file.read_text())
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-m", "textsieve.cli", *args], stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"textsieve {' '.join(args)} failed ({done.returncode}); see {log}")
    wall_file.write_text(f"{wall:.3f}")
    return wall


def ratios(export: Path) -> dict[str, dict]:
    """Per sample id: its ratio and which detector decided it (None if errored)."""
    ids = {}
    for line in (export / "stats.jsonl").read_text().splitlines():
        row = json.loads(line)
        video = row["videos"][0]
        ids[Path(video["video"]).name] = {"ratio": video["ratio"], "decided_by": video.get("decided_by")}
    return ids


def agreement(got: dict[str, dict], craft: dict[str, dict], t: float) -> tuple[int, int, list[str]]:
    """Of the videos both judged: how many got CRAFT's decision at ``t``, of how many; the others named."""
    both = [k for k in craft if k in got]
    wrong = [f"{k} (CRAFT {craft[k]['ratio']:.4f}, got {got[k]['ratio']:.4f})" for k in both
             if (got[k]["ratio"] <= t) != (craft[k]["ratio"] <= t)]
    return len(both) - len(wrong), len(both), wrong


def bench_folder(folder: Path, others: list[Path], work: Path, venv: Path | None, env: dict) -> dict:
    here = work / folder.name
    here.mkdir(parents=True, exist_ok=True)
    data = dataset(folder, here / "data.jsonl")
    n = len(data.read_text().splitlines())
    out: dict = {"folder": folder.name, "videos": n, "runs": {}}
    runs = out["runs"]
    if venv is not None:
        dj_out = here / "dj" / "result.jsonl"
        wall_file = here / "dj.wall"
        if not wall_file.exists():
            dj_out.parent.mkdir(parents=True, exist_ok=True)
            wall_file.write_text(str(timed([str(venv / "bin" / "dj-process"), "--config",
                                            str(recipe(here / "dj.yaml", data, dj_out, 1))], env, here / "dj.log")[0]))
        runs["Data-Juicer (np 1)"] = {"wall": float(wall_file.read_text()),
                                      "ratios": {k: {"ratio": v[0], "decided_by": None} for k, v in dj_ratios(dj_out).items()}}
    base = ["run", "--dataset", str(data), "--restart"]
    for name, flags in (("craft", []), ("craft bf16", ["--precision", "bf16"]), ("ppocr", ["--detector", "ppocr"])):
        export = here / name.replace(" ", "-")
        runs[name] = {"wall": textsieve(here / f"{name.replace(' ', '-')}.log", *base, "--export", str(export), *flags),
                      "ratios": ratios(export)}
    rest = [json.loads(line) for o in others for line in dataset(o, here / "cal" / f"{o.name}.jsonl").read_text().splitlines()]
    fitted_on = here / "cal" / "others.jsonl"
    fitted_on.write_text("".join(json.dumps(r) + "\n" for r in rest))
    calibration = here / "cal" / "calibration.json"
    # --force: the bench measures the cascade whatever calibrate's gate says; what it measured is in the file
    out["calibration"] = {"videos": len(rest), "wall": textsieve(
        here / "cal" / "calibrate.log", "calibrate", "--dataset", str(fitted_on), "--export", str(here / "cal" / "export"),
        "--detector", "cascade", "--samples", str(min(200, len(rest))), "--max-area-ratio", "0.05", "--out",
        str(calibration), "--force"),
        "report": json.loads(calibration.read_text())["report"].get("cascade_held_out")}
    for precision in ("fp32", "bf16"):
        for t in THRESHOLDS:
            name = f"cascade {precision} @{t:g}"
            export = here / f"cascade-{precision}-at{round(1000 * t):03d}"  # no dot: the log's suffix would eat it
            runs[name] = {"wall": textsieve(here / f"{export.name}.log", *base, "--export", str(export), "--detector",
                                            "cascade", "--calibration", str(calibration), "--max-area-ratio", f"{t:g}",
                                            "--precision", precision),
                          "ratios": ratios(export), "threshold": t}
    return out


def report(results: list[dict], argv: list[str]) -> None:
    print(f"### Held out, side by side ({date.today()}, {platform.node()}, {os.cpu_count()} cores)\n")
    print(f"Command: `python bench/bench_heldout.py {' '.join(argv)}`\n")
    print("| folder | run | wall | videos/s | vs Data-Juicer | decisions as CRAFT's at 0.02 / 0.05 / 0.1 | sent to CRAFT |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        craft = r["runs"]["craft"]["ratios"]
        dj = r["runs"].get("Data-Juicer (np 1)", {}).get("wall")
        for name, run in r["runs"].items():
            ts = [run["threshold"]] if "threshold" in run else THRESHOLDS
            agree = " / ".join(f"{a}/{of}" for a, of, _ in (agreement(run["ratios"], craft, t) for t in ts))
            if "threshold" in run:
                agree = f"at {run['threshold']:g}: {agree}"
            if len(run["ratios"]) < r["videos"]:  # Data-Juicer's skip_op_error drops a sample it cannot read
                agree += f" ({r['videos'] - len(run['ratios'])} not judged)"
            sent = [v["decided_by"] == "craft" for v in run["ratios"].values()]
            share = f"{100 * sum(sent) / len(sent):.0f}%" if "cascade" in name and sent else "-"
            speed = f"{dj / run['wall']:.1f}x" if dj else "-"
            print(f"| {r['folder']} ({r['videos']}) | {name} | {run['wall']:.0f} s | {r['videos'] / run['wall']:.3f} | "
                  f"{speed} | {agree} | {share} |")
        cal, measured = r["calibration"], r["calibration"]["report"] or {}
        agreement_at = " / ".join(f"{100 * v:.0f}%" for v in measured.get("agreement", {}).values())
        sent_at = " / ".join(f"{100 * v:.0f}%" for v in measured.get("sent_to_reference", {}).values())
        print(f"| {r['folder']} ({r['videos']}) | calibration on the other folders ({cal['videos']} videos) | "
              f"{cal['wall']:.0f} s | - | - | its own held-out estimate: {agreement_at} | {sent_at} |")
    print()
    for r in results:
        craft = r["runs"]["craft"]["ratios"]
        dj = r["runs"].get("Data-Juicer (np 1)")
        if dj:
            diffs = [abs(dj["ratios"][k]["ratio"] - craft[k]["ratio"]) for k in craft if k in dj["ratios"]]
            absent = sorted(set(craft) - set(dj["ratios"]))
            print(f"- {r['folder']}: Data-Juicer judged {len(dj['ratios'])}/{r['videos']}"
                  f"{f' (dropped without a record: {absent})' if absent else ''}; largest |DJ - craft| "
                  f"{max(diffs, default=float('nan')):.1e}")
        bf = r["runs"]["craft bf16"]["ratios"]
        d = {k: abs(bf[k]["ratio"] - craft[k]["ratio"]) for k in craft if k in bf}
        worst = max(d.items(), key=lambda kv: kv[1], default=("-", float("nan")))
        print(f"- {r['folder']}: largest |bf16 - fp32| {worst[1]:.2e} ({worst[0]})")
        for name, run in r["runs"].items():
            for t in ([run["threshold"]] if "threshold" in run else THRESHOLDS):
                for w in agreement(run["ratios"], craft, t)[2]:
                    print(f"- {r['folder']}, {name}, at {t:g}: {w}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, default=Path("bench/work/heldout"))
    parser.add_argument("--venv", type=Path, default=Path("bench/work/dj-venv"), help="Data-Juicer's own venv")
    parser.add_argument("--no-dj", action="store_true", help="skip Data-Juicer (its venv is not installed)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    venv, env = (None, dict(os.environ)) if args.no_dj else dj_env(args.work, args.venv.resolve())
    results = []
    for folder in args.folders:
        results.append(bench_folder(folder, [o for o in args.folders if o != folder], args.work, venv, env))
        (args.work / "heldout.json").write_text(json.dumps(results, indent=1))
    report(results, sys.argv[1:])


if __name__ == "__main__":
    main()
