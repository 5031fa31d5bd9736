"""Threshold carry-over: a monotone map from a fast detector's frame ratios
to CRAFT's, fitted on pairs measured on the same frames, and the numbers
that say how far it can be trusted. Pure, except for reading and writing
the calibration file.

Why per frame and monotone: a detector that sees more text on a frame
should never map to less; isotonic regression is the least-squares fit
under exactly that constraint and nothing else (no assumed shape). Frames,
not videos, are fitted so that ``aggregate: max|p90`` see mapped frames too;
decisions are then taken on the mapped frames' aggregate, as in a run.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from .judging import MARGIN_GRID, Margins, conformal_quantile, fit_margins, route
from .data.export import write_json_atomic
from .errors import ConfigError
from .judging import in_range, video_ratio

FORMAT = "textsieve-calibration/1"
# what a calibration was fitted with that changes the ratios it maps: a run
# with other values cannot use it
CARRIED = ("area_mode", "aggregate", "sampling", "frame_sample_num", "color_conversion")


@dataclass(frozen=True)
class Calibration:
    detector: str  # whose ratios are mapped
    max_side: int | None  # its resolution setting when fitted
    x: tuple[float, ...]  # knots: the fast detector's ratio ...
    y: tuple[float, ...]  # ... and CRAFT's; linear between, flat outside
    reference: str = "craft"
    fitted_on: dict = field(default_factory=dict, compare=False)
    report: dict = field(default_factory=dict, compare=False)
    margins: Margins | None = None  # the cascade's routing margins (docs/fast-detector.md)

    def __call__(self, ratios: Sequence[float]) -> list[float]:
        return [float(v) for v in np.interp(np.asarray(ratios, dtype=np.float64), self.x, self.y)]

    @property
    def fitted_range(self) -> tuple[float, float]:
        """The fast ratios the map was fitted on; outside, it only extends flat."""
        return self.x[0], self.x[-1]

    @property
    def fingerprint(self) -> str:
        """Identifies the mapping itself: resuming a run with another one is refused."""
        margins = self.margins.to_json() if self.margins else None
        key = json.dumps([self.detector, self.max_side, self.reference, self.x, self.y, margins])
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def check_applies(self, op) -> None:
        """Refuse an op this calibration cannot carry, naming what differs."""
        fast = "ppocr" if op.detector == "cascade" else op.detector
        if fast != self.detector:
            raise ConfigError(f"calibration maps {self.detector} ratios, but the detector is {op.detector}: "
                              f"set detector: {self.detector} (or cascade), or calibrate {op.detector}")
        if op.max_side != self.max_side:
            raise ConfigError(f"calibration was fitted at max_side {self.max_side}, the run uses {op.max_side}: "
                              "ratios change with resolution, so re-run `textsieve calibrate` with this max_side")
        for name in CARRIED:
            if name in self.fitted_on and self.fitted_on[name] != getattr(op, name):
                raise ConfigError(f"calibration was fitted with {name}: {self.fitted_on[name]}, the run uses "
                                  f"{getattr(op, name)}: re-run `textsieve calibrate` with the run's {name}")
        if op.detector == "cascade" and self.margins is None:
            raise ConfigError("detector cascade needs routing margins, which this calibration file lacks: "
                              "re-run `textsieve calibrate` (textsieve 0.2 or later writes them)")

    def to_json(self) -> dict:
        data = asdict(self)
        data["margins"] = self.margins.to_json() if self.margins else None
        return {"format": FORMAT, **data, "fingerprint": self.fingerprint}


def fit_isotonic(fast: Sequence[float], reference: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Knots of the least-squares non-decreasing fit of ``reference`` on ``fast``."""
    from scipy.optimize import isotonic_regression

    if len(fast) != len(reference) or not len(fast):
        raise ValueError("need equally many fast and reference ratios, at least one")
    x = np.asarray(fast, dtype=np.float64)
    # equal inputs must map to one value: pool them first (mean, weighted by count)
    xs, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=np.asarray(reference, dtype=np.float64)) / counts
    ys = isotonic_regression(means, weights=counts.astype(np.float64), increasing=True).x
    # drop knots inside flat runs: the interpolant is unchanged
    keep = np.ones(len(xs), dtype=bool)
    keep[1:-1] = ~((ys[1:-1] == ys[:-2]) & (ys[1:-1] == ys[2:]))
    return tuple(float(v) for v in xs[keep]), tuple(float(v) for v in ys[keep])


@dataclass
class VideoPair:
    """One video's frame ratios from both detectors, same frames."""

    video: str
    fast: list[float]
    reference: list[float]
    kind: str = ""  # optional label for reports (e.g. the clip's kind in a benchmark)


def agreement(fast: Sequence[float], reference: Sequence[float], lo: float, hi: float) -> float:
    """Share of videos on whose keep/drop the two ratios agree for [lo, hi]."""
    if not fast:
        return math.nan
    same = sum(in_range(f, lo, hi) == in_range(r, lo, hi) for f, r in zip(fast, reference))
    return same / len(fast)


def threshold_ranges(min_ratio: float, max_ratio: float,
                     extra: Sequence[float] = (0.02, 0.05, 0.1)) -> dict[str, tuple[float, float]]:
    """The decisions to check: the recipe's own range, and ``ratio <= t`` for
    the thresholds users commonly drop text-heavy clips at."""
    ranges = {f"ratio <= {t:g}": (0.0, t) for t in extra}
    if (min_ratio, max_ratio) not in ranges.values():
        ranges = {f"recipe [{min_ratio:g}, {max_ratio:g}]": (min_ratio, max_ratio), **ranges}
    return ranges


def evaluate(pairs: Sequence[VideoPair], mapped: Sequence[Sequence[float]], aggregate: str,
             ranges: dict[str, tuple[float, float]]) -> dict:
    """Errors and decision agreement of mapped fast ratios against CRAFT's, per video."""
    ref = [video_ratio(p.reference, aggregate) for p in pairs]
    got = [video_ratio(m, aggregate) for m in mapped]
    errors = np.abs(np.asarray(got) - np.asarray(ref))
    out = {
        "videos": len(pairs),
        "mean_abs_error": float(errors.mean()),
        "p95_abs_error": float(np.percentile(errors, 95)),
        "max_abs_error": float(errors.max()),
        "agreement": {name: agreement(got, ref, lo, hi) for name, (lo, hi) in ranges.items()},
    }
    disagree = {}
    for name, (lo, hi) in ranges.items():
        disagree[name] = [
            {"video": p.video, "kind": p.kind, "fast": g, "craft": r}
            for p, g, r in zip(pairs, got, ref) if in_range(g, lo, hi) != in_range(r, lo, hi)
        ]
    out["disagreements"] = disagree
    return out


def fit_pairs(pairs: Sequence[VideoPair]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    fast = [v for p in pairs for v in p.fast]
    ref = [v for p in pairs for v in p.reference]
    return fit_isotonic(fast, ref)


def held_out_maps(pairs: Sequence[VideoPair], folds: int = 5, seed: int = 0) -> list[list[float]]:
    """Each video's frames mapped by a fit that never saw it, so that what is
    measured on them is what a new video of the same dataset can expect."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    folds = max(2, min(folds, len(pairs)))
    mapped: list[list[float]] = [[] for _ in pairs]
    for k in range(folds):
        held = set(order[k::folds])
        fold_map = Calibration("fold", None, *fit_pairs([p for i, p in enumerate(pairs) if i not in held]))
        for i in held:
            mapped[i] = fold_map(pairs[i].fast)
    return mapped


def cross_validate(pairs: Sequence[VideoPair], aggregate: str, ranges: dict[str, tuple[float, float]],
                   folds: int = 5, seed: int = 0) -> dict:
    """Held-out quality of the map alone."""
    return evaluate(pairs, held_out_maps(pairs, folds, seed), aggregate, ranges)


def cascade_held_out(pairs: Sequence[VideoPair], mapped: Sequence[Sequence[float]], aggregate: str,
                     ranges: dict[str, tuple[float, float]], level: float, folds: int = 5, seed: int = 0) -> dict:
    """Held-out quality of the cascade: each fold's videos routed by margins
    fitted on the other folds' held-out ratios; a routed video takes CRAFT's
    ratio. Reports decision agreement and the share sent to CRAFT per range."""
    ref = [video_ratio(p.reference, aggregate) for p in pairs]
    fast = [video_ratio(m, aggregate) for m in mapped]
    order = list(range(len(pairs)))
    random.Random(seed + 1).shuffle(order)
    folds = max(2, min(folds, len(pairs)))
    agree = {name: 0 for name in ranges}
    routed = {name: 0 for name in ranges}
    for k in range(folds):
        held = set(order[k::folds])
        train = [i for i in range(len(pairs)) if i not in held]
        margins, _ = fit_margins([fast[i] for i in train], [ref[i] for i in train], level,
                                 MARGIN_GRID + tuple(t for lo_hi in ranges.values() for t in lo_hi))
        for i in held:
            for name, (lo, hi) in ranges.items():
                # only the margins are judged here: the box and range checks
                # need what calibration pairs do not keep, and only add routing
                send = route(fast[i], 0.0, False, lo, hi, margins) is not None
                decided = ref[i] if send else fast[i]
                routed[name] += send
                agree[name] += in_range(decided, lo, hi) == in_range(ref[i], lo, hi)
    n = len(pairs)
    return {"videos": n, "level": level, "agreement": {k: v / n for k, v in agree.items()},
            "sent_to_reference": {k: v / n for k, v in routed.items()}}


def calibrate(pairs: Sequence[VideoPair], detector: str, max_side: int | None, aggregate: str,
              ranges: dict[str, tuple[float, float]], fitted_on: dict | None = None, folds: int = 5,
              seed: int = 0, level: float = 0.995) -> Calibration:
    """Fit the map on every pair and the cascade's margins on the held-out
    ratios; report the uncalibrated, held-out and in-sample quality of the
    map, and the held-out quality of the cascade."""
    if len(pairs) < 2:
        raise ConfigError(f"calibration needs at least 2 judged videos, got {len(pairs)}: sample more of the dataset")
    folds = max(2, min(folds, len(pairs)))
    held = held_out_maps(pairs, folds, seed)
    fast = [video_ratio(m, aggregate) for m in held]
    ref = [video_ratio(p.reference, aggregate) for p in pairs]
    margins, achieved = fit_margins(fast, ref, level, MARGIN_GRID + tuple(t for lo_hi in ranges.values() for t in lo_hi))
    fit = Calibration(detector, max_side, *fit_pairs(pairs), fitted_on=fitted_on or {}, margins=margins)
    fit.report.update(
        uncalibrated=evaluate(pairs, [p.fast for p in pairs], aggregate, ranges),
        held_out=evaluate(pairs, held, aggregate, ranges),
        in_sample=evaluate(pairs, [fit(p.fast) for p in pairs], aggregate, ranges),
        cascade_held_out=cascade_held_out(pairs, held, aggregate, ranges, level, folds, seed),
        margins_level=achieved,
        folds=folds,
        ranges={k: list(v) for k, v in ranges.items()},
    )
    return fit


def reachable_level(videos: int, level: float) -> float:
    """The coverage that margins fitted on ``videos`` held-out scores can
    hold at: ``level``, or only n/(n+1) when n is too small for it."""
    return conformal_quantile([0.0] * videos, level)[1] if videos else 0.0


def videos_for_level(level: float) -> int | None:
    """The fewest calibration videos whose margins reach ``level`` (199 for
    0.995); None for a level no sample reaches (1 or more)."""
    if not 0 < level < 1:
        return None
    n = 1
    while math.ceil((n + 1) * level) > n:  # conformal_quantile's rank, exactly (no rounding shortcut)
        n += 1
    return n


def videos_routed(calibration: Calibration, fast_frames: Sequence[Sequence[float]], aggregate: str,
                  lo: float, hi: float) -> int:
    """How many of these videos (the fast detector's frame ratios) the
    calibration's margins send to CRAFT for the range [lo, hi], as a run
    would (the box check aside: calibration passes keep no boxes)."""
    if calibration.margins is None:
        raise ValueError("a calibration without margins routes nothing")
    top = calibration.fitted_range[1]
    return sum(route(video_ratio(calibration(frames), aggregate), 0.0, bool(frames) and max(frames) > top, lo, hi,
                     calibration.margins) is not None for frames in fast_frames)


def speedup(f: float, sent: float) -> float:
    """The cascade's speed-up over CRAFT alone: it runs the fast detector on
    every video (``f``, its cost relative to CRAFT's) and CRAFT on the share
    ``sent``, so it costs about f + s of CRAFT alone."""
    return 1.0 / (f + sent) if f + sent > 0 else math.inf


@dataclass(frozen=True)
class CascadeCost:
    """What the cascade is expected to cost, from measured pass timings and
    the held-out share it sends to CRAFT per decision range."""

    fast_s_per_video: float | None  # None: not timed (passes merged from a killed session only)
    craft_s_per_video: float | None
    sent: dict[str, float]  # per range name, the share sent to CRAFT

    @property
    def f(self) -> float | None:
        """The fast pass's cost relative to CRAFT's, per video."""
        if self.fast_s_per_video is None or not self.craft_s_per_video:
            return None
        return self.fast_s_per_video / self.craft_s_per_video

    def speedup(self, name: str) -> float | None:
        return None if self.f is None else speedup(self.f, self.sent[name])

    def to_json(self) -> dict:
        return {"fast_s_per_video": self.fast_s_per_video, "craft_s_per_video": self.craft_s_per_video,
                "f": self.f, "sent": dict(self.sent), "speedup": {name: self.speedup(name) for name in self.sent}}

    @classmethod
    def from_json(cls, data: dict) -> "CascadeCost":
        return cls(data.get("fast_s_per_video"), data.get("craft_s_per_video"), dict(data.get("sent", {})))


@dataclass(frozen=True)
class Verdict:
    """Whether a calibration may be saved, and every number that decides it:
    what a refusal states."""

    range_name: str  # the recipe's own decision range
    videos: int
    gate: Literal["cascade", "map"]  # whose held-out agreement decides: the way the file will be used
    min_agreement: float
    cascade_agreement: float  # the cascade's decisions against CRAFT's, held out
    cascade_sent: float  # the share it sent to CRAFT doing so
    map_agreement: float  # the mapped fast ratios' decisions alone, held out
    level: float  # the coverage the margins were asked for (--level)
    reachable: float  # what that many videos can reach: level, or n/(n+1)
    videos_for_level: int | None  # how many reach ``level``

    @property
    def agreement(self) -> float:
        return self.cascade_agreement if self.gate == "cascade" else self.map_agreement

    @property
    def passed(self) -> bool:
        return self.agreement >= self.min_agreement


def judge(calibration: Calibration, range_name: str, gate: Literal["cascade", "map"],
          min_agreement: float) -> Verdict:
    """The verdict on a fitted calibration for its recipe's range."""
    report = calibration.report
    cascade = report["cascade_held_out"]
    n = report["held_out"]["videos"]
    return Verdict(range_name, n, gate, min_agreement, cascade["agreement"][range_name],
                   cascade["sent_to_reference"][range_name], report["held_out"]["agreement"][range_name],
                   cascade["level"], reachable_level(n, cascade["level"]), videos_for_level(cascade["level"]))


def save_calibration(calibration: Calibration, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, calibration.to_json())
    return path


@lru_cache(maxsize=8)
def load_calibration(path: str) -> Calibration:
    """Read a calibration file (cached: every video of a run applies it)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"calibration {path}: cannot read it ({exc}); make one with `textsieve calibrate`") from exc
    return calibration_from_json(data, str(path))


def calibration_from_json(data: dict, where: str = "calibration") -> Calibration:
    """Rebuild a calibration from its JSON form (a file, or what a driver ships to Ray workers)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"calibration {where}: not a textsieve calibration file (format {FORMAT})")
    try:
        x, y = tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"])
        margins = Margins.from_json(data["margins"]) if data.get("margins") else None
        calibration = Calibration(data["detector"], data["max_side"], x, y, data.get("reference", "craft"),
                                  data.get("fitted_on", {}), data.get("report", {}), margins)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"calibration {where}: malformed ({exc!r}); re-run `textsieve calibrate`") from exc
    if not x or len(x) != len(y) or any(b < a for a, b in zip(x, x[1:])) or any(b < a for a, b in zip(y, y[1:])):
        raise ConfigError(f"calibration {where}: knots must be non-empty, of equal length and non-decreasing")
    return calibration
