"""Per-video statistics and the keep/drop decision: pure, no I/O.

Executors compute frame ratios wherever they like and call these, so every
executor (and ``textsieve decide`` on saved stats) decides the same way.
"""

from __future__ import annotations

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
