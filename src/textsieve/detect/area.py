"""Text area of one frame from detector boxes: pure functions.

Boxes come in EasyOCR's two forms: horizontal ``(xmin, xmax, ymin, ymax)``
and free-form quads ``[[x, y]] * 4``. Both area modes take the same input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
from PIL import Image, ImageDraw

AreaMode = Literal["dj", "union"]

HBox = Sequence[float]  # xmin, xmax, ymin, ymax
Quad = Sequence[Sequence[float]]  # four (x, y) points


@dataclass
class Detections:
    """What a detector found on one frame."""

    horizontal: list[list[float]] = field(default_factory=list)
    free: list[list[list[float]]] = field(default_factory=list)
    # quads the detector's own sanity rule refused as text (the fast detector's
    # frame-filling boxes): not in the ratio, but they send a video to CRAFT
    rejected: list[list[list[float]]] = field(default_factory=list)

    def to_json(self) -> dict:
        out = {
            "horizontal": [[float(v) for v in box] for box in self.horizontal],
            "free": [[[float(v) for v in p] for p in quad] for quad in self.free],
        }
        if self.rejected:
            out["rejected"] = [[[float(v) for v in p] for p in quad] for quad in self.rejected]
        return out


def polygons(det: Detections) -> list[list[int]]:
    """The boxes as compact polygons, ``[x0, y0, x1, y1, x2, y2, x3, y3]`` in
    whole pixels (horizontal boxes as their four corners): what the stats
    keep, enough to draw them again."""
    out = [[round(xmin), round(ymin), round(xmax), round(ymin), round(xmax), round(ymax), round(xmin), round(ymax)]
           for xmin, xmax, ymin, ymax in det.horizontal]
    out += [[round(v) for point in quad for v in point] for quad in det.free]
    return out


def triangle_area(p1: Sequence[float], p2: Sequence[float], p3: Sequence[float]) -> float:
    """Shoelace area of a triangle."""
    (x1, y1), (x2, y2), (x3, y3) = p1, p2, p3
    return 0.5 * abs(x1 * y2 + x2 * y3 + x3 * y1 - x2 * y1 - x3 * y2 - x1 * y3)


def dj_text_area(horizontal: Sequence[HBox], free: Sequence[Quad]) -> float:
    """Data-Juicer's formula: rectangle areas (inverted boxes skipped) plus
    each quad as triangles (p0,p1,p2) and (p2,p3,p0). No clipping to the
    frame, no union: overlaps count twice, which thresholds tuned on
    Data-Juicer rely on."""
    area = 0.0
    for xmin, xmax, ymin, ymax in horizontal:
        if xmax < xmin or ymax < ymin:
            continue
        area += float((xmax - xmin) * (ymax - ymin))
    for p in free:
        area += triangle_area(p[0], p[1], p[2]) + triangle_area(p[2], p[3], p[0])
    return area


def union_text_area(horizontal: Sequence[HBox], free: Sequence[Quad], width: int, height: int) -> float:
    """Pixels covered by any box, clipped to the frame (so the ratio is at
    most 1). A pixel (i, j) is covered by a rectangle when xmin <= j < xmax
    and ymin <= i < ymax; quads are rasterised by their outline and inside."""
    mask = np.zeros((height, width), dtype=bool)
    for xmin, xmax, ymin, ymax in horizontal:
        x0, x1 = int(np.clip(np.floor(xmin), 0, width)), int(np.clip(np.ceil(xmax), 0, width))
        y0, y1 = int(np.clip(np.floor(ymin), 0, height)), int(np.clip(np.ceil(ymax), 0, height))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = True
    if free:
        canvas = Image.new("1", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for quad in free:
            draw.polygon([(float(x), float(y)) for x, y in quad], fill=1)
        mask |= np.asarray(canvas, dtype=bool)
    return float(mask.sum())


def frame_text_ratio(det: Detections, width: int, height: int, mode: AreaMode = "dj") -> float:
    """Share of the frame covered by text under ``mode``."""
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if mode == "dj":
        area = dj_text_area(det.horizontal, det.free)
    elif mode == "union":
        area = union_text_area(det.horizontal, det.free, width, height)
    else:
        raise ValueError(f"unknown area_mode {mode!r}; use 'dj' or 'union'")
    return area / (width * height)


def largest_box_share(det: Detections, width: int, height: int) -> float:
    """The share of the frame its single largest box covers: a detector that
    boxes a whole natural scene as text shows as one frame-filling box."""
    shares = ([dj_text_area([box], []) for box in det.horizontal]
              + [dj_text_area([], [quad]) for quad in det.free + det.rejected])
    return max(shares, default=0.0) / float(width * height)
