"""Judging, pure and without I/O: a video's statistic from its frame ratios,
the range test (the only one in textsieve), the sample's keep/drop decision,
and the cascade's routing of a video to CRAFT.

Executors compute frame ratios wherever they like and call these, so every
executor, ``textsieve calibrate`` and ``textsieve decide`` on saved stats
judge the same way.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Aggregate = Literal["mean", "max", "p90"]
AnyOrAll = Literal["any", "all"]

STATS_FIELD = "__dj__stats__"
STAT_KEY = "video_ocr_area_ratio"


def video_ratio(frame_ratios: Sequence[float], how: Aggregate = "mean") -> float:
    """One number per video from its frames' ratios; Data-Juicer uses the mean."""
    if not frame_ratios:
        raise ValueError("a video needs at least one frame ratio")
    values = np.asarray(frame_ratios, dtype=np.float64)
    if how == "mean":
        return float(np.mean(values))
    if how == "max":
        return float(values.max())
    if how == "p90":
        return float(np.percentile(values, 90))
    raise ValueError(f"unknown aggregate {how!r}; use mean, max or p90")


def in_range(ratio: float, min_ratio: float, max_ratio: float, reversed_range: bool = False) -> bool:
    """Data-Juicer's range test, the only one in textsieve: a ratio passes
    inside [min, max], both ends included, or outside it with
    ``reversed_range``. Videos, pieces and ``decide`` all judge through it."""
    return (min_ratio <= ratio <= max_ratio) != reversed_range


def keep_sample(ratios: Sequence[float], min_ratio: float, max_ratio: float, any_or_all: AnyOrAll,
                reversed_range: bool = False) -> bool:
    """Keep when each video's ratio is in [min, max] (inclusive; outside it
    with ``reversed_range``, as in Data-Juicer), then any or all over the
    sample's videos; a sample without videos is kept."""
    if not ratios:
        return True
    inside = [in_range(r, min_ratio, max_ratio, reversed_range) for r in ratios]
    if any_or_all == "any":
        return any(inside)
    if any_or_all == "all":
        return all(inside)
    raise ValueError(f"any_or_all must be 'any' or 'all', got {any_or_all!r}")


def keep_with_verdicts(ratios: Sequence[float], verdicts: Sequence[bool | None], min_ratio: float, max_ratio: float,
                       any_or_all: AnyOrAll, reversed_range: bool = False) -> bool:
    """:func:`keep_sample` where some videos bring their own verdict (a video
    judged in pieces with ``segment_aggregate: any|all``); None: its ratio decides."""
    if all(v is None for v in verdicts):
        return keep_sample(ratios, min_ratio, max_ratio, any_or_all, reversed_range)
    inside = [v if v is not None else in_range(r, min_ratio, max_ratio, reversed_range)
              for v, r in zip(verdicts, ratios)]
    return any(inside) if any_or_all == "any" else all(inside)


def kinds_within(kind_ratios: dict[str, float] | None, limits: dict[str, float]) -> bool:
    """Whether a video's kinds of text stay within the per-kind maxima (no
    limits, or no kinds judged: nothing to refuse). A video past one is not
    kept, whatever its ratio, reversed_range included: the limit says that
    kind of text is not wanted (docs/kinds.md)."""
    if not limits or kind_ratios is None:
        return True
    return all(kind_ratios[kind] <= limit for kind, limit in limits.items())


def with_stats(sample: dict, ratios: Sequence[float]) -> dict:
    """The sample unchanged plus Data-Juicer's stats field."""
    out = dict(sample)
    stats = dict(out.get(STATS_FIELD) or {})
    stats[STAT_KEY] = [float(r) for r in ratios]
    out[STATS_FIELD] = stats
    return out


# The cascade's routing, pure: which videos the fast detector may decide
# alone, and which CRAFT must re-judge so that every decision is CRAFT's.
#
# The cascade's routing: which videos the fast detector may decide alone, and
# which CRAFT must re-judge so that every decision is CRAFT's.
#
# The fast detector's video ratio, mapped onto CRAFT's scale by the
# calibration, settles a threshold ``t`` when it lies farther from ``t`` than
# any wrong decision reaches. ``textsieve calibrate`` measures this held out:
# each calibration video, mapped by a fit that never saw it, scores its
# distance from ``t`` if its fast decision at ``t`` differs from CRAFT's, and
# 0 if not; the margin at ``t`` is the split-conformal quantile of these
# scores. Then a new video of the same data is decided wrongly and not sent
# to CRAFT with probability at most ``1 - level``. A video within the margin
# of ``min`` or ``max``, outside the range the map was fitted on, or with a
# box that fills most of a frame (how the fast detector fails on natural
# scenes) goes to CRAFT.

# a single box covering this share of a frame is not a text layout but a
# detector seeing texture as text: such videos are always re-judged
FRAME_FILLING_BOX = 0.5
# thresholds the margins are fitted at (with the recipe's own and the usual
# ones); between two of them, the larger of their margins applies
MARGIN_GRID = tuple(float(v) for v in np.round(np.geomspace(0.002, 0.8, 28), 5)) + (0.01, 0.02, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Margins:
    """How far from a threshold the mapped fast ratio must lie to decide alone."""

    grid: tuple[float, ...]
    margin: tuple[float, ...]
    level: float  # the held-out coverage the margins were fitted for

    def at(self, threshold: float) -> float:
        """The margin at ``threshold``: fitted there, or the larger of the two
        grid points around it (past either end, the end's)."""
        i = bisect.bisect_left(self.grid, threshold)
        if i < len(self.grid) and self.grid[i] == threshold:
            return self.margin[i]
        return max(self.margin[max(0, i - 1)], self.margin[min(len(self.grid) - 1, i)])

    def to_json(self) -> dict:
        return {"grid": list(self.grid), "margin": list(self.margin), "level": self.level}

    @classmethod
    def from_json(cls, data: dict) -> "Margins":
        return cls(tuple(float(v) for v in data["grid"]), tuple(float(v) for v in data["margin"]), float(data["level"]))


def conformal_quantile(scores: Sequence[float], level: float) -> tuple[float, float]:
    """The split-conformal bound on a new score, and the level it holds at:
    the ceil((n+1) level)-th smallest score. With too few scores for
    ``level``, the largest score, which holds at n / (n+1)."""
    n = len(scores)
    if n == 0:
        return 0.0, 0.0
    rank = math.ceil((n + 1) * level)
    if rank > n:
        return float(max(scores)), n / (n + 1)
    return float(sorted(scores)[rank - 1]), level


def wrong_side_scores(mapped: Sequence[float], reference: Sequence[float], threshold: float) -> list[float]:
    """Per video: how far its mapped fast ratio lies from ``threshold`` when
    it falls on the other side than CRAFT's ratio (the band it would take to
    send it to CRAFT), else 0."""
    return [abs(m - threshold) if (m <= threshold) != (r <= threshold) else 0.0 for m, r in zip(mapped, reference)]


def fit_margins(mapped: Sequence[float], reference: Sequence[float], level: float = 0.995,
                grid: Sequence[float] = MARGIN_GRID) -> tuple[Margins, float]:
    """Margins at each grid threshold from held-out pairs (a video's mapped
    fast ratio, CRAFT's ratio); returns them and the level they hold at
    (lower than asked when there are too few videos for it)."""
    out, held = [], level
    grid = sorted(set(grid))
    for t in grid:
        bound, achieved = conformal_quantile(wrong_side_scores(mapped, reference, t), level)
        out.append(bound)
        held = min(held, achieved)
    return Margins(tuple(float(g) for g in grid), tuple(out), held), held


def route(video_ratio: float, largest_box_share: float, outside_fit: bool, min_ratio: float, max_ratio: float,
          margins: Margins) -> str | None:
    """Why CRAFT must re-judge a video, or None when its mapped fast ratio
    settles it. ``outside_fit``: a frame's raw ratio lies past the range the
    map was fitted on, where it can only extend flat."""
    if largest_box_share >= FRAME_FILLING_BOX:
        return "frame-filling box"
    if outside_fit:
        return "outside the calibrated range"
    for threshold in (min_ratio, max_ratio):
        if 0.0 < threshold < 1.0 and abs(video_ratio - threshold) <= margins.at(threshold):
            return f"within the margin of {threshold:g}"
    return None
