"""``textsieve calibrate``: both detectors on a random sample of the user's
own dataset, then the monotone map from the fast one's ratios to CRAFT's.

The two passes are ordinary runs (same planner, executors, resume) into
``<export>/calibrate/<detector>``, so a calibration interrupted half-way
picks up where it stopped, and CRAFT's pass uses the GPUs when there are.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .. import __version__
from ..calibration import Calibration, VideoPair, calibrate, save_calibration, threshold_ranges
from ..config import RunConfig
from ..data.dataset import Row, dataset_base, read_rows, video_paths
from ..data.export import dumps, read_jsonl, write_json_atomic
from ..errors import ConfigError, VideoError
from .collector import AlreadyComplete
from .execute import execute


def draw_samples(config: RunConfig, count: int, seed: int) -> list[Row]:
    """A uniform random draw of ``count`` judgeable samples (reservoir: one
    pass, memory bounded by ``count``), in dataset order."""
    rng = random.Random(seed)
    base = dataset_base(config.dataset)
    chosen: list[Row] = []
    seen = 0
    for row in read_rows(config.dataset):
        if row.error is not None:
            continue
        try:
            paths = video_paths(row.sample, config.filter.video_key, base)
        except VideoError:
            continue
        if not paths:
            continue
        row.sample = {**row.sample, config.filter.video_key: paths}  # absolute: the sample file lives elsewhere
        seen += 1
        if len(chosen) < count:
            chosen.append(row)
        else:
            j = rng.randrange(seen)
            if j < count:
                chosen[j] = row
    return sorted(chosen, key=lambda r: r.index)


def _pass(config: RunConfig, sample_file: Path, folder: Path, detector: str, max_side: int | None,
          restart: bool) -> Path:
    op = config.filter.model_copy(update={"detector": detector, "max_side": max_side, "calibration": None})
    run = config.model_copy(update={"dataset_path": str(sample_file), "export_path": str(folder), "filter": op,
                                    "strict": False})
    try:
        if execute(run, restart=restart) is None:
            raise ConfigError(f"calibration pass {detector}: the plan found no device to run on")
    except AlreadyComplete:
        pass  # finished by an earlier calibrate of the same sample: reuse it
    return folder / "stats.jsonl"


def read_pairs(reference_stats: Path, fast_stats: Path) -> list[VideoPair]:
    """Videos judged by both passes, with their frames' ratios side by side."""
    reference = {v["video"]: v for rec in read_jsonl(reference_stats) for v in rec["videos"]}
    pairs = []
    for rec in read_jsonl(fast_stats):
        for v in rec["videos"]:
            ref = reference.get(v["video"])
            if ref is None:
                continue
            if ref["frame_times"] != v["frame_times"]:
                raise ConfigError(f"{v['video']}: the two passes sampled different frames; report this as a bug")
            pairs.append(VideoPair(v["video"], v["frame_ratios"], ref["frame_ratios"]))
    return pairs


def run_calibration(config: RunConfig, samples: int = 200, seed: int = 0, out: str | None = None,
                    restart: bool = False, min_agreement: float = 0.99, force: bool = False,
                    level: float = 0.995) -> tuple[Calibration, Path]:
    """Both detectors on a random sample, then the map and the cascade's
    margins. Not saved when the held-out agreement at the recipe's own
    thresholds, for the way the file will be used (``ppocr`` alone or the
    ``cascade``), is below ``min_agreement``, unless ``force``."""
    config.require_io()
    op = config.filter
    if op.detector == "craft":
        raise ConfigError("calibrate maps a fast detector's ratios to CRAFT's: set detector: ppocr or cascade "
                          "(or --detector ppocr|cascade)")
    fast_detector = "ppocr"
    if samples < 2:
        raise ConfigError("--samples: calibrate needs at least 2 samples")
    work = config.export_dir / "calibrate"
    work.mkdir(parents=True, exist_ok=True)
    rows = draw_samples(config, samples, seed)
    if len(rows) < 2:
        raise ConfigError(f"{config.dataset}: fewer than 2 samples with videos to calibrate on")
    sample_file = work / f"sample-{samples}-seed{seed}.jsonl"
    text = "".join(dumps(r.sample) + "\n" for r in rows)
    if not sample_file.exists() or sample_file.read_text() != text:
        sample_file.write_text(text)
        restart = True  # another draw: earlier passes do not apply
    reference = _pass(config, sample_file, work / "craft", "craft", None, restart)
    fast = _pass(config, sample_file, work / fast_detector, fast_detector, op.max_side, restart)
    pairs = read_pairs(reference, fast)
    fitted_on = {
        "dataset": config.dataset, "samples": len(rows), "seed": seed, "videos": len(pairs),
        "frames": sum(len(p.fast) for p in pairs), "frame_sample_num": op.frame_sample_num, "sampling": op.sampling,
        "area_mode": op.area_mode, "aggregate": op.aggregate, "color_conversion": op.color_conversion,
        "textsieve_version": __version__,
        "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    ranges = threshold_ranges(op.min_area_ratio, op.max_area_ratio)
    calibration = calibrate(pairs, fast_detector, op.max_side, op.aggregate, ranges, fitted_on, seed=seed, level=level)
    write_json_atomic(work / "report.json", calibration.report)
    recipe = next(name for name, lo_hi in ranges.items() if lo_hi == (op.min_area_ratio, op.max_area_ratio))
    gate = "cascade_held_out" if op.detector == "cascade" else "held_out"
    agreed = calibration.report[gate]["agreement"][recipe]
    if agreed < min_agreement and not force:
        what = "the cascade" if gate == "cascade_held_out" else f"the mapped {fast_detector} ratios"
        raise ConfigError(
            f"calibration not saved: held out, {what} agree with CRAFT on {100 * agreed:.1f}% of decisions at {recipe}, below "
            f"--min-agreement {min_agreement:g} (report: {work / 'report.json'}). Calibrate on more samples, use "
            "detector: cascade, or pass --force to save it anyway")
    path = Path(out) if out else config.export_dir / f"calibration-{fast_detector}.json"
    save_calibration(calibration, path)
    return calibration, path


def print_report(calibration: Calibration, path: Path, console: Console | None = None) -> None:
    console = console or Console()
    report = calibration.report
    ranges = list(report["ranges"])
    table = Table(title=f"{calibration.detector} -> craft on {calibration.fitted_on.get('videos')} videos "
                        f"({calibration.fitted_on.get('frames')} frames)")
    table.add_column("ratios")
    table.add_column("mean |error|", justify="right")
    table.add_column("p95 |error|", justify="right")
    for name in ranges:
        table.add_column(f"agree {name}", justify="right")
    labels = {"uncalibrated": f"{calibration.detector}'s own", "held_out": f"mapped, held out ({report['folds']}-fold)",
              "in_sample": "mapped, in sample"}
    for key, label in labels.items():
        r = report[key]
        table.add_row(label, f"{r['mean_abs_error']:.4f}", f"{r['p95_abs_error']:.4f}",
                      *[f"{100 * r['agreement'][n]:.1f}%" for n in ranges])
    console.print(table)
    cascade = report["cascade_held_out"]
    print(f"cascade, held out (margins fitted for {100 * cascade['level']:.1f}% coverage, "
          f"{100 * report['margins_level']:.1f}% reachable with {cascade['videos']} videos): "
          + "; ".join(f"{name}: {100 * cascade['agreement'][name]:.1f}% agree, "
                      f"{100 * cascade['sent_to_reference'][name]:.0f}% sent to CRAFT" for name in ranges))
    costly = {name: share for name, share in cascade["sent_to_reference"].items() if share > 0.5}
    if costly:
        # the cascade then runs both detectors on most videos: no faster than CRAFT alone
        print("  the cascade would send most videos to CRAFT ("
              + ", ".join(f"{100 * share:.0f}% at {name}" for name, share in costly.items())
              + "): on this data it is about as slow as `detector: craft`, which gives the same decisions; "
              f"{calibration.detector} misses text that CRAFT finds in this sample (see the disagreements)")
    held = report["held_out"]
    for name in ranges:
        wrong = held["disagreements"][name]
        if wrong:
            shown = ", ".join(f"{Path(d['video']).name} ({d['fast']:.3f} vs {d['craft']:.3f})" for d in wrong[:5])
            print(f"  {name}: {len(wrong)} video(s) decided differently (held out), e.g. {shown}")
    # plain print: a path must never be wrapped
    print(f"saved {path}; apply it with `calibration: {path}` in the op (or --calibration {path}) "
          f"and detector: cascade (CRAFT's decisions) or {calibration.detector} (its mapped ratios alone), "
          f"max_side: {calibration.max_side}")
