"""The cascade's routing, pure: which videos the fast detector may decide
alone, and which CRAFT must re-judge so that every decision is CRAFT's.

The fast detector's video ratio, mapped onto CRAFT's scale by the
calibration, settles a threshold ``t`` when it lies farther from ``t`` than
any wrong decision reaches. ``textsieve calibrate`` measures this held out:
each calibration video, mapped by a fit that never saw it, scores its
distance from ``t`` if its fast decision at ``t`` differs from CRAFT's, and
0 if not; the margin at ``t`` is the split-conformal quantile of these
scores. Then a new video of the same data is decided wrongly and not sent
to CRAFT with probability at most ``1 - level``. A video within the margin
of ``min`` or ``max``, outside the range the map was fitted on, or with a
box that fills most of a frame (how the fast detector fails on natural
scenes) goes to CRAFT.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


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
