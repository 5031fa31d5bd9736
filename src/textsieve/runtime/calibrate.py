"""``textsieve calibrate``: both detectors on a random sample of the user's
own dataset, then the monotone map from the fast one's ratios to CRAFT's
and the cascade's margins.

Each pass is an ordinary run (same planner and executors: CRAFT's pass uses
the GPUs when there are) over the drawn samples it has not measured yet, and
what it measures is kept in ``<export>/calibrate/passes.json``
(runtime/passes.py). So a calibration refused at the agreement gate is
accepted with ``--force`` without detecting again, a larger ``--samples``
detects only the samples it adds (the draw is prefix-stable), and an
interrupted one resumes.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .. import __version__
from ..calibration import (
    Calibration,
    CascadeCost,
    Verdict,
    VideoPair,
    calibrate,
    judge,
    load_calibration,
    save_calibration,
    speedup,
    threshold_ranges,
    videos_routed,
)
from ..config import RunConfig
from ..data.atomic import write_atomic
from ..data.dataset import Row, dataset_base, read_rows, video_paths
from ..data.export import dumps, write_json_atomic
from ..errors import ConfigError, VideoError
from ..redact import mask_url
from .execute import execute
from .passes import (
    FAST,
    PASSES,
    REFERENCE,
    Merged,
    SavedPasses,
    pass_op,
    pass_settings,
    run_folder,
    sample_file,
)


class CalibrationRefused(ConfigError):
    """Measured, fitted and reported, but below the agreement gate: not saved.
    The passes are kept, so accepting or extending it detects nothing again."""

    def __init__(self, message: str, calibration: Calibration, verdict: Verdict):
        super().__init__(message)
        self.calibration = calibration
        self.verdict = verdict


@dataclass
class Draw:
    rows: list[Row]  # in draw order: any larger draw with the same seed starts with these
    available: int  # samples with videos in the dataset


def draw_key(seed: int, index: int) -> int:
    """A row's place in the seed's random order: a hash, so that it does not
    depend on how many rows are drawn nor on the rows around it."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest(), "big")


def draw_samples(config: RunConfig, count: int, seed: int) -> Draw:
    """A uniform random draw of ``count`` judgeable samples: those with the
    ``count`` smallest keys (one pass, memory bounded by ``count``), in key
    order. Prefix-stable: drawing 40 gives the 20 that drawing 20 gave, then
    20 more, which is what lets a calibration be extended."""
    base = dataset_base(config.dataset)
    heap: list[tuple[int, int, Row]] = []  # (-key, index, row): the largest kept key on top
    available = 0
    for row in read_rows(config.dataset):
        if row.error is not None:
            continue
        try:
            paths = video_paths(row.sample, config.filter.video_key, base)
        except VideoError:
            continue
        if not paths:
            continue
        available += 1
        key = draw_key(seed, row.index)
        if len(heap) < count:
            row.sample = {**row.sample, config.filter.video_key: paths}  # absolute: the sample file lives elsewhere
            heapq.heappush(heap, (-key, row.index, row))
        elif key < -heap[0][0]:
            row.sample = {**row.sample, config.filter.video_key: paths}
            heapq.heapreplace(heap, (-key, row.index, row))
    return Draw([row for _, _, row in sorted(heap, key=lambda t: (-t[0], t[1]))], available)


def _videos(row: Row, video_key: str) -> list[str]:
    # as the passes' stats name them
    return [mask_url(v) for v in row.sample[video_key]]


def _measure(config: RunConfig, saved: SavedPasses, name: str, todo: list[Row]) -> Merged:
    """One pass's run over ``todo``, merged into the saved passes however it
    ends (finished, stopped, interrupted), with its wall time."""
    path, folder = sample_file(saved.work, name), run_folder(saved.work, name)
    write_atomic(path, "".join(dumps(r.sample) + "\n" for r in todo))
    run = config.model_copy(update={"dataset_path": str(path), "export_path": str(folder),
                                    "filter": pass_op(config, name), "strict": False, "export_shard_size": 0,
                                    "export_type": "jsonl"})
    started = time.monotonic()
    try:
        # restart: what the folder held was merged already (or at salvage)
        if execute(run, restart=True) is None:
            raise ConfigError(f"calibration pass {name}: the plan found no device to run on")
    finally:
        merged = saved.merge_run(name, [_videos(r, config.filter.video_key) for r in todo])
        if merged.measured:
            saved[name].timing.seconds += time.monotonic() - started
            saved[name].timing.videos += merged.measured
        saved.save()
    return merged


def read_pairs(saved: SavedPasses, rows: list[Row], video_key: str) -> list[VideoPair]:
    """The drawn videos measured by both passes (each once, in draw order),
    their frames' ratios side by side."""
    seen: set[str] = set()
    videos = [v for r in rows for v in _videos(r, video_key) if not (v in seen or seen.add(v))]
    fast, reference = saved[FAST].videos, saved[REFERENCE].videos
    pairs = []
    for video in saved.videos_measured_by_both(videos):
        if fast[video].frame_times != reference[video].frame_times:
            raise ConfigError(f"{video}: the two passes sampled different frames ({saved.path}); report this as a "
                              "bug, and pass --restart to measure both passes again")
        pairs.append(VideoPair(video, fast[video].frame_ratios, reference[video].frame_ratios))
    return pairs


def _cost(saved: SavedPasses, sent: dict[str, float]) -> CascadeCost:
    return CascadeCost(saved[FAST].timing.per_video, saved[REFERENCE].timing.per_video, sent)


def _speedup_line(f: float | None, sent: float, where: str, recipe: str, basis: str) -> str:
    if f is None:
        bound = "no faster than CRAFT" if sent >= 1 else f"at most {speedup(0.0, sent):.1f}x"
        return (f"expected speed-up of the cascade over detector: craft at {recipe} ({where}): {bound} "
                f"(s = {100 * sent:.0f}% sent to CRAFT, {basis}; the passes' costs are not timed yet)")
    return (f"expected speed-up of the cascade over detector: craft at {recipe} ({where}): about "
            f"{speedup(f, sent):.1f}x = 1/(f + s), f = {f:.3f} (the fast pass's cost per video relative to CRAFT's, "
            f"timed), s = {100 * sent:.0f}% sent to CRAFT ({basis})")


def _estimate(config: RunConfig, saved: SavedPasses, draw: Draw, ranges: dict[str, tuple[float, float]], recipe: str,
              level: float, out: Path) -> str | None:
    """The speed-up the cascade can expect at the recipe's thresholds, before
    CRAFT's pass: from the videos calibrated earlier in this folder (held
    out) and the fast ratios of the new ones routed by their fit; else from
    an earlier calibration file. None when there is nothing to go on."""
    op = config.filter
    lo, hi = ranges[recipe]
    earlier_videos = saved.videos_measured_by_both(list(saved[FAST].videos))
    drawn = list(dict.fromkeys(v for r in draw.rows for v in _videos(r, op.video_key)))
    new = [saved[FAST].videos[v].frame_ratios for v in drawn
           if v in saved[FAST].videos and v not in saved[REFERENCE].videos]
    if len(earlier_videos) >= 2:
        pairs = [VideoPair(v, saved[FAST].videos[v].frame_ratios, saved[REFERENCE].videos[v].frame_ratios)
                 for v in earlier_videos]
        fit = calibrate(pairs, FAST, op.max_side, op.aggregate, {recipe: (lo, hi)}, level=level)
        held = fit.report["cascade_held_out"]["sent_to_reference"][recipe]
        sent = (held * len(pairs) + videos_routed(fit, new, op.aggregate, lo, hi)) / (len(pairs) + len(new))
        basis = f"held out on the {len(pairs)} videos calibrated earlier" + (
            f", routed by their fit on {len(new)} new fast ratios" if new else "")
        return _speedup_line(_cost(saved, {}).f, sent, "estimate", recipe, basis)
    for path in (out, op.calibration):
        if not path or not Path(path).is_file():
            continue
        try:
            earlier = load_calibration(str(path))
        except ConfigError:
            continue
        if earlier.margins is None or earlier.max_side != op.max_side:
            continue
        f = _cost(saved, {}).f
        if f is None and "cost" in earlier.report:
            f = CascadeCost.from_json(earlier.report["cost"]).f
        if new:
            sent, basis = videos_routed(earlier, new, op.aggregate, lo, hi) / len(new), \
                f"{len(new)} new fast ratios routed by {path}"
        else:
            held = earlier.report.get("cascade_held_out", {}).get("sent_to_reference", {})
            if recipe not in held:
                continue
            sent, basis = held[recipe], f"as {path} measured it held out"
        return _speedup_line(f, sent, "estimate", recipe, basis)
    return None


def refusal(verdict: Verdict, detector: str, calibration: Calibration, draw: Draw, samples: int,
            saved: SavedPasses, report: Path) -> str:
    """What the refusal says: what was measured, why it is not enough, and
    the exact ways on."""
    v = verdict
    n = v.videos
    gate = "the cascade's" if v.gate == "cascade" else f"the mapped {detector} ratios'"
    lines = [
        f"calibration not saved: held out on {n} videos, at the recipe's range {v.range_name}:",
        (f"  the cascade decides as CRAFT on {100 * v.cascade_agreement:.1f}% "
         f"({round(v.cascade_agreement * n)} of {n}), sending {100 * v.cascade_sent:.0f}% of the videos to CRAFT;"),
        (f"  the mapped {detector} ratios alone (no cascade) decide as CRAFT on {100 * v.map_agreement:.1f}% "
         f"({round(v.map_agreement * n)} of {n});"),
        (f"  detector: {'cascade' if v.gate == 'cascade' else detector} is gated on {gate} agreement, "
         f"{100 * v.agreement:.1f}% < --min-agreement {v.min_agreement:g}."),
    ]
    if v.gate == "map" and v.cascade_agreement >= v.min_agreement:
        lines.append("  The cascade would pass: calibrate with --detector cascade to save this calibration for it.")
    if v.reachable < v.level:
        need = f"; {100 * v.level:.1f}% takes at least {v.videos_for_level} videos" if v.videos_for_level else ""
        lines.append(f"  With {n} videos the margins can reach only {100 * v.reachable:.1f}% coverage (n/(n+1)), "
                     f"not the {100 * v.level:.1f}% asked (--level){need}.")
    cost = CascadeCost.from_json(calibration.report["cost"])
    lines.append("  " + _speedup_line(cost.f, v.cascade_sent, "measured", v.range_name, "held out") + ".")
    lines.append(f"Both passes are kept in {saved.path}: neither way on detects them again.")
    lines.append("  To accept this calibration as measured: run the same command with --force.")
    drawn = len(draw.rows)
    if draw.available > drawn:
        more = min(draw.available, max(2 * samples, drawn + 1))
        lines.append(f"  To extend it: run the same command with --samples {more} (the {drawn} samples drawn so far "
                     f"stay in the draw; only the {more - drawn} new ones are detected).")
    else:
        lines.append(f"  It cannot be extended: the dataset has no more samples with videos than these {drawn}.")
    lines.append(f"The full report: {report}")
    return "\n".join(lines)


@dataclass(frozen=True)
class CalibrateRequest:
    """What ``textsieve calibrate`` was asked, beside the run's settings."""

    samples: int = 200  # drawn at random, prefix-stable (a larger draw keeps the smaller one)
    seed: int = 0
    out: str | None = None  # the calibration file; default <export>/calibration-ppocr.json
    restart: bool = False  # discard the kept passes
    min_agreement: float = 0.99  # the gate on the held-out agreement at the recipe's thresholds
    force: bool = False  # save below the gate (the kept passes: nothing detected again)
    level: float = 0.995  # the margins' coverage


def run_calibration(config: RunConfig, request: CalibrateRequest = CalibrateRequest()) -> tuple[Calibration, Path]:
    """Both detectors on a random sample (only what the saved passes lack),
    then the map and the cascade's margins. Not saved, with
    :class:`CalibrationRefused`, when the held-out agreement at the recipe's
    own thresholds, for the way the file will be used (``ppocr`` alone or
    the ``cascade``), is below ``min_agreement``, unless ``force``."""
    config.require_io()
    op = config.filter
    if op.detector == "craft":
        raise ConfigError("calibrate maps a fast detector's ratios to CRAFT's: set detector: ppocr or cascade "
                          "(or --detector ppocr|cascade)")
    if request.samples < 2:
        raise ConfigError("--samples: calibrate needs at least 2 samples")
    draw = draw_samples(config, request.samples, request.seed)
    if len(draw.rows) < 2:
        raise ConfigError(f"{config.dataset}: fewer than 2 samples with videos to calibrate on")
    work = config.export_dir / "calibrate"
    saved = SavedPasses.open(work, pass_settings(config), request.restart)
    recovered = saved.salvage(op.video_key)
    if recovered.measured or recovered.failed:
        print(f"merged {recovered.measured + recovered.failed} video(s) that a stopped calibration had measured "
              f"into {saved.path}")
    ranges = threshold_ranges(op.min_area_ratio, op.max_area_ratio)
    recipe = next(name for name, lo_hi in ranges.items() if lo_hi == (op.min_area_ratio, op.max_area_ratio))
    path = Path(request.out) if request.out else config.export_dir / f"calibration-{FAST}.json"
    _run_passes(config, saved, draw, ranges, recipe, request.level, path)
    pairs = read_pairs(saved, draw.rows, op.video_key)
    calibration = calibrate(pairs, FAST, op.max_side, op.aggregate, ranges, _fitted_on(config, draw, pairs, request.seed),
                            seed=request.seed, level=request.level)
    calibration.report["cost"] = _cost(saved, calibration.report["cascade_held_out"]["sent_to_reference"]).to_json()
    report = work / "report.json"
    write_json_atomic(report, calibration.report)
    verdict = judge(calibration, recipe, "cascade" if op.detector == "cascade" else "map", request.min_agreement)
    if not verdict.passed and not request.force:
        raise CalibrationRefused(refusal(verdict, FAST, calibration, draw, request.samples, saved, report),
                                 calibration, verdict)
    save_calibration(calibration, path)
    return calibration, path


def _run_passes(config: RunConfig, saved: SavedPasses, draw: Draw, ranges: dict, recipe: str, level: float,
                path: Path) -> None:
    """Each pass on the drawn samples it has not measured; the expected
    speed-up said before the expensive pass."""
    op = config.filter

    def todo(name: str) -> list[Row]:
        # a sample the fast pass could not judge gives no pair: CRAFT need not judge it
        skip = saved[FAST].failed if name == REFERENCE else {}
        return [r for r in draw.rows if not saved[name].done(videos := _videos(r, op.video_key))
                and not any(v in skip for v in videos)]

    if any(todo(name) for name in PASSES):
        estimate = _estimate(config, saved, draw, ranges, recipe, level, path)
        if estimate:
            print(estimate)
    for name in PASSES:
        rows = todo(name)
        measured = sum(saved[name].done(_videos(r, op.video_key)) for r in draw.rows)
        skipped = len(draw.rows) - len(rows) - measured
        print(f"{name} pass: detecting {len(rows)} of the {len(draw.rows)} drawn sample(s), {measured} already "
              f"measured in {saved.path}" + (f", {skipped} that {FAST} could not judge skipped" if skipped else ""))
        if rows:
            _measure(config, saved, name, rows)
        if name == FAST and rows and todo(REFERENCE):
            # the cheap pass is done; CRAFT's, the expensive one, is next: say what it buys
            estimate = _estimate(config, saved, draw, ranges, recipe, level, path)
            print(estimate or f"no earlier calibration here to estimate the speed-up from: it is measured once "
                              f"CRAFT's pass is done ({FAST}: {saved[FAST].timing.per_video or 0:.3f} s per video)")


def _fitted_on(config: RunConfig, draw: Draw, pairs: list, seed: int) -> dict:
    op = config.filter
    return {
        "dataset": config.dataset, "samples": len(draw.rows), "seed": seed, "videos": len(pairs),
        "frames": sum(len(p.fast) for p in pairs), "frame_sample_num": op.frame_sample_num, "sampling": op.sampling,
        "area_mode": op.area_mode, "aggregate": op.aggregate, "color_conversion": op.color_conversion,
        "textsieve_version": __version__,
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def print_report(calibration: Calibration, path: Path | None, console: Console | None = None) -> None:
    """The calibration's quality table and the cascade's; ``path`` None: not saved."""
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
    if "cost" in report:
        cost = CascadeCost.from_json(report["cost"])
        if cost.f is None:
            print("expected speed-up of the cascade over detector: craft: the passes' costs were not timed "
                  "(merged from a stopped calibration)")
        else:
            print(f"expected speed-up of the cascade over detector: craft, measured (1/(f + s); f = {cost.f:.3f}: "
                  f"{calibration.detector} {cost.fast_s_per_video:.3f} s and CRAFT {cost.craft_s_per_video:.3f} s "
                  "per video in the passes; s: the share sent to CRAFT, held out): "
                  + "; ".join(f"{name}: {cost.speedup(name):.1f}x" for name in ranges))
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
    if path is None:
        return
    # plain print: a path must never be wrapped
    print(f"saved {path}; apply it with `calibration: {path}` in the op (or --calibration {path}) "
          f"and detector: cascade (CRAFT's decisions) or {calibration.detector} (its mapped ratios alone), "
          f"max_side: {calibration.max_side}")
