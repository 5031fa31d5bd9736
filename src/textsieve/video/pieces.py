"""Long videos in pieces: which pieces, which frames in each, and what the
pieces decide. Pure functions, no decoding.

With ``segment_s: S`` a video is cut into pieces of S seconds (the last one
shorter) and each piece is judged on its own: sampled by the op's rule
inside the piece, given its own ratio and keep/drop. Uniform sampling takes
the middles of ``frame_sample_num`` equal slots of the piece (so no frame is
shared by two pieces, unlike Data-Juicer's 0, d/2, d over a whole video);
interval sampling takes one frame every ``interval_s`` from the piece's
start, and the uniform rule when that would be more than
``frame_sample_num``. Each target gets the first frame at or after it, as
everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Sequence

from ..judging import video_ratio

SegmentAggregate = Literal["mean", "any", "all"]


@dataclass(frozen=True)
class Piece:
    index: int
    start: Fraction  # seconds, inclusive
    end: Fraction  # seconds, exclusive (the video's end for the last piece)

    def to_json(self) -> dict:
        return {"start": float(self.start), "end": float(self.end)}


def pieces(duration: Fraction, seconds: Fraction) -> list[Piece]:
    """The pieces of a video of ``duration`` seconds: at least one."""
    if seconds <= 0:
        raise ValueError(f"segment_s must be > 0, got {seconds}")
    count = max(1, math.ceil(duration / seconds))
    return [Piece(i, seconds * i, min(seconds * (i + 1), duration)) for i in range(count)]


def piece_targets(piece: Piece, n: int, method: str, interval_s: Fraction) -> list[Fraction]:
    """Target times inside ``piece`` for the op's sampling rule: uniform, the
    middles of n equal slots; interval, one every ``interval_s`` from the
    piece's start, or the uniform rule when that is more than n."""
    length = piece.end - piece.start
    if method == "interval":
        every = [piece.start + interval_s * k for k in range(math.ceil(length / interval_s))]
        if 0 < len(every) <= n:
            return every
    return [piece.start + length * (2 * i + 1) / (2 * n) for i in range(n)]


def merge_kept(spans: Sequence[tuple[float, float, bool]]) -> list[list[float]]:
    """Adjacent kept pieces merged into ranges ``[start, end]``: the parts of
    the video that can be cut out and kept."""
    out: list[list[float]] = []
    for start, end, keep in spans:
        if not keep:
            continue
        if out and out[-1][1] == start:
            out[-1][1] = end
        else:
            out.append([start, end])
    return out


def video_decision(piece_ratios: Sequence[float], piece_keeps: Sequence[bool], how: SegmentAggregate) -> tuple[float, bool | None]:
    """The video's ratio (the mean of its pieces') and, for ``any``/``all``,
    its decision from its pieces' (``mean``: None, the ratio decides)."""
    ratio = video_ratio(piece_ratios, "mean")
    if how == "any":
        return ratio, any(piece_keeps)
    if how == "all":
        return ratio, all(piece_keeps)
    return ratio, None
