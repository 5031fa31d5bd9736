"""The report's histograms of ratios: log bins and the SVG that draws them.

One drawing for every histogram on the page (the main ratio's and, where a
run judged the kinds of text, one per kind), so that they share their axis
and read the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

import numpy as np

from .scan import Thresholds

# one bin for exact zeros, one below 1e-4, then five log bins per decade up to
# 1 (edges rounded to 3 digits so decades are exact), then > 1 (Data-Juicer's
# area sums overlapping boxes, so a ratio can pass 1)
LOG_EDGES = np.array([float(f"{10 ** (k / 5):.3g}") for k in range(-20, 1)])

# the histogram's SVG geometry, in its viewBox units
SVG_W, SVG_H, PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 960, 300, 56, 12, 34, 52


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    label: str
    lo_open: bool = False
    hi_open: bool = True

    def side(self, th: Thresholds) -> str:
        """in: every ratio of the bin is within the thresholds; out: none; part."""
        if self.hi < th.min_ratio or (self.hi == th.min_ratio and self.hi_open) or self.lo > th.max_ratio or (
                self.lo == th.max_ratio and self.lo_open):
            return "out"
        return "in" if th.min_ratio <= self.lo and self.hi <= th.max_ratio else "part"


OVER_ONE = Bin(1.0, math.inf, "> 1", lo_open=True)


def histogram_counts(ratios: np.ndarray) -> tuple[list[Bin], list[int]]:
    """Bins and their counts; the '> 1' bin only when a ratio is there."""
    bins = [Bin(0.0, 0.0, "0", hi_open=False), Bin(0.0, float(LOG_EDGES[0]), "(0, 10⁻⁴)", lo_open=True)]
    bins += [Bin(float(a), float(b), f"[{a:g}, {b:g})") for a, b in zip(LOG_EDGES[:-1], LOG_EDGES[1:])]
    bins[-1] = Bin(bins[-1].lo, 1.0, f"[{bins[-1].lo:g}, 1]", hi_open=False)
    counts = [int(np.count_nonzero(ratios == 0)), int(np.count_nonzero((ratios > 0) & (ratios < LOG_EDGES[0])))]
    # np.histogram's bins are half-open but its last one is closed: [0.631, 1]
    counts += np.histogram(ratios[(ratios >= LOG_EDGES[0]) & (ratios <= 1)], bins=LOG_EDGES)[0].astype(int).tolist()
    over = int(np.count_nonzero(ratios > 1))
    if over:
        bins.append(OVER_ONE)
        counts.append(over)
    return bins, counts


class Axis:
    """Where a ratio lies along the histogram's x axis: equal-width bins for
    exact 0, for (0, 1e-4), 20 log bins to 1, maybe one for > 1."""

    def __init__(self, bins: int):
        self.left = PAD_LEFT
        self.bins = bins
        self.step = (SVG_W - PAD_LEFT - PAD_RIGHT) / bins

    def x(self, r: float, is_max: bool = False) -> float:
        if r <= 0:
            # max 0 keeps the zero bin, min 0 lets it in: the lines bound it
            return self.left + (self.step if is_max else 0)
        if r < LOG_EDGES[0]:
            return self.left + self.step * (1 + r / LOG_EDGES[0])
        if r <= 1:
            return self.left + self.step * (2 + 5 * (math.log10(r) + 4))
        return self.left + self.step * (self.bins - 0.5 if self.bins > 22 else self.bins)


@dataclass(frozen=True)
class Line:
    """A threshold drawn across a histogram."""

    ratio: float
    element_id: str
    label: str
    is_max: bool


@dataclass(frozen=True)
class Plot:
    """One histogram: its bins and counts on an axis, the range it shades
    (None: none) and its threshold lines."""

    bins: list[Bin]
    counts: list[int]
    axis: Axis
    bar_class: Callable[[Bin], str]
    band: Thresholds | None
    lines: list[Line]
    height: int = SVG_H
    x_title: str = "text area ratio per video"


def plot_svg(head: str, plot: Plot) -> list[str]:
    """The pieces of one histogram's SVG, from ``head`` (its opening tag) to
    its threshold lines; the caller adds what else it draws and closes it."""
    axis, top, left = plot.axis, PAD_TOP, PAD_LEFT
    plot_w, plot_h = SVG_W - PAD_LEFT - PAD_RIGHT, plot.height - PAD_TOP - PAD_BOTTOM
    peak = max(plot.counts) if plot.counts else 0
    ticks = _nice_ticks(peak)
    y_top = max(ticks[-1], peak, 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_top)

    parts = [head]
    if plot.band is not None:
        x_lo, x_hi = axis.x(plot.band.min_ratio), axis.x(plot.band.max_ratio, is_max=True)
        parts.append(f'<rect class="band" x="{x_lo:.1f}" y="{top}" width="{max(0.0, x_hi - x_lo):.1f}" '
                     f'height="{plot_h}"/>')
    for tick in ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text class="ytick" x="{left - 6}" y="{y(tick) + 4:.1f}">{_compact(tick)}</text>')
    for i, (b, count) in enumerate(zip(plot.bins, plot.counts)):
        x = left + i * axis.step
        h = plot_h * count / y_top
        if count and h < 1:
            h = 1.0  # a bin with any video stays visible
        parts.append(
            f'<rect class="{plot.bar_class(b)}" x="{x + 1.5:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{axis.step - 3:.1f}" height="{h:.1f}" data-count="{count}" data-lo="{b.lo!r}" data-hi="{b.hi!r}">'
            f"<title>{escape(b.label)}: {count:,} videos</title></rect>"
        )
        if count:
            parts.append(f'<text class="count" x="{x + axis.step / 2:.1f}" y="{top + plot_h - h - 3:.1f}">'
                         f"{_compact(count)}</text>")
    base = top + plot_h
    parts += _x_axis(axis, len(plot.bins), base, plot.x_title)
    parts.append(f'<text class="ytitle" transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)">videos</text>')
    for line in plot.lines:
        x = axis.x(line.ratio, line.is_max)
        anchor = "start" if line.is_max else "end"
        dx = 4 if line.is_max else -4
        parts.append(f'<line class="threshold" id="{line.element_id}" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" '
                     f'y2="{base}"/><text class="tlabel" x="{x + dx:.1f}" y="{top - 10}" text-anchor="{anchor}">'
                     f"{escape(line.label)} {line.ratio:g}</text>")
    return parts


def _x_axis(axis: Axis, n_bins: int, base: float, title: str) -> list[str]:
    """The ratio axis under the bars: its line, decade ticks and title."""
    left, plot_w = PAD_LEFT, SVG_W - PAD_LEFT - PAD_RIGHT
    parts = [f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}"/>']
    labels = [(left + axis.step * 0.5, "0"), (left + axis.step * 1.5, "<10⁻⁴")]
    # (10⁻⁴ itself would collide with the "<10⁻⁴" bin's label)
    labels += [(axis.x(10.0 ** e), {-3: "0.001", -2: "0.01", -1: "0.1", 0: "1"}[e]) for e in range(-3, 1)]
    if n_bins > 22:
        labels.append((left + axis.step * 22.5, "> 1"))
    for x, text in labels:
        parts.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}"/>'
                     f'<text class="xtick" x="{x:.1f}" y="{base + 17}">{text}</text>')
    parts.append(f'<text class="xtitle" x="{left + plot_w / 2:.1f}" y="{base + PAD_BOTTOM - 8}">{escape(title)} '
                 "(bins: exact 0, below 10⁻⁴, then 5 log-spaced per decade)</text>")
    return parts


def _compact(n: int) -> str:
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1e6:.1f}M"


def _nice_ticks(top: int) -> list[int]:
    if top <= 0:
        return [0]
    step = 10 ** int(math.floor(math.log10(max(1, top / 4))))
    for mult in (1, 2, 5, 10):
        if top / (step * mult) <= 5:
            step *= mult
            break
    return list(range(0, top + 1, int(step)))


def share(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole``; a dash of nothing."""
    return f"{100 * part / whole:.1f}%" if whole else "—"
