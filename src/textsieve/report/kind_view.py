"""The report's kinds of text (docs/kinds.md), for a run that judged them:
a colour per kind, the section with a histogram per kind and the table of
main kinds, and the gallery's boxes drawn in their kind's colour.

The boxes are SVG over the thumbnail, not pixels in it, so that each carries
its kind as a tooltip (and as ``data-kind``, for tests and scripts).
"""

from __future__ import annotations

import os
from html import escape

import numpy as np

from ..kind_rules import KINDS
from ..video.frames import scaled_size
from .gallery import Card, shown_frames
from .histogram import OVER_ONE, SVG_W, Axis, Bin, Line, Plot, histogram_counts, plot_svg, share
from .scan import KindScan, Scan, Thresholds

# a fixed colour per kind, from Okabe and Ito's palette, which readers with
# each common colour-vision deficiency can tell apart; vermillion and sky blue
# for the kinds curators drop most, both visible on dark and light frames
KIND_COLORS = {"overlay": "#D55E00", "subtitle": "#56B4E9", "screen": "#CC79A7", "scene": "#009E73"}
NONE_COLOR = "#999999"  # main kind "none": no text
KIND_SVG_H = 200  # the per-kind histograms are shorter than the main one
KIND_WORDS = {
    "overlay": "watermarks, logos, score bugs, read-outs: the same place in nearly every frame, near an edge",
    "subtitle": "burned-in lines, centred near the bottom or top, whose content changes while the band stays",
    "screen": "slides, screen recordings, credits: rows of text over much of the frame",
    "scene": "the rest: text that moves with the camera (signs, shop fronts, plates)",
}

KIND_CSS = "".join(
    f".k-{kind}{{--k:{color}}}.key.k-{kind}{{background:{color}}}.bar.k-{kind}{{fill:{color}}}"
    for kind, color in {**KIND_COLORS, "none": NONE_COLOR}.items()) + """
.bar.over{opacity:.45}
.legend{display:flex;gap:14px;flex-wrap:wrap;margin:6px 0;font-size:13px}.legend .key{margin-left:0}
.shot{position:relative}.shot svg.boxes{position:absolute;left:0;top:0;width:100%;height:100%}
.boxes polygon{fill:var(--k);fill-opacity:.12;stroke:var(--k);stroke-width:2px;vector-effect:non-scaling-stroke;
filter:drop-shadow(0 0 1px rgba(0,0,0,.8))}
.kname{color:var(--k)}.kinds{font-size:12px;color:var(--muted)}.kinds b{color:var(--k)}.kinds .over{color:#b42318;font-weight:600}
#main-kinds td,#main-kinds th{text-align:right}#main-kinds td:first-child{text-align:left}
"""


def legend() -> str:
    """The colour of each kind, as a line of keys."""
    keys = "".join(f'<span class="k-{kind}" data-kind="{kind}" title="{escape(KIND_WORDS[kind])}">'
                   f'<span class="key k-{kind}"></span>{kind}</span>' for kind in KINDS)
    return f'<div class="legend">{keys}</div>'


def kind_section(scan: Scan, n_bins: int) -> str:
    """A histogram per kind on the main histogram's axis (``n_bins`` bins),
    each kind's maximum as a threshold line, and the table of main kinds."""
    ks = scan.kinds
    assert ks is not None
    words = "".join(f'<li><b class="kname k-{kind}">{kind}</b>: {escape(KIND_WORDS[kind])}</li>'
                    for kind in KINDS)
    counted = ("" if ks.count_kinds is None else
               f" The main ratio counts only <b>{escape(', '.join(ks.count_kinds))}</b> (count_kinds).")
    scale = (" Kind ratios are on the detector's own scale: the calibration maps the main ratio only."
             if scan.op.get("calibration") else "")
    limits = ", ".join(f"max_{kind}_ratio {limit:g}" for kind, limit in ks.limits.items())
    rule = (f" The recipe sets {escape(limits)}: a video past one is dropped whatever its ratio."
            if ks.limits else " The recipe sets no per-kind maximum.")
    intro = (f"<p>Each box has a kind, from where it is and how it behaves across the video's frames "
             f"(docs/kinds.md):</p><ul>{words}</ul><p>A kind's ratio is the area of that kind's boxes over the "
             "frame's, with the main ratio's formula; a video's <b>main kind</b> is the kind with the largest "
             f"ratio (none: no text).{counted}{rule}{scale}</p>")
    plots = "".join(_kind_histogram(ks, kind, n_bins) for kind in KINDS)
    return (f'<section id="kinds"><h2>Kinds of text</h2>{intro}{legend()}{_main_kinds(ks)}'
            f"<h3>Ratio per kind</h3>{plots}</section>")


def kind_bins(ratios: np.ndarray, n_bins: int) -> tuple[list[Bin], list[int]]:
    """A kind's bins on an axis of ``n_bins`` bins (the '> 1' bin, empty,
    where another histogram of the page has one)."""
    bins, counts = histogram_counts(ratios)
    if len(bins) < n_bins:
        bins, counts = [*bins, OVER_ONE], [*counts, 0]
    return bins, counts


def _kind_histogram(ks: KindScan, kind: str, n_bins: int) -> str:
    ratios = ks.ratios[kind]
    bins, counts = kind_bins(ratios, n_bins)
    limit = ks.limits.get(kind)
    band = Thresholds(0.0, limit, "any") if limit is not None else None

    def bar_class(b: Bin) -> str:
        return f"bar k-{kind}" + (" over" if band is not None and b.side(band) == "out" else "")

    lines = [Line(limit, f"threshold-{kind}-max", f"max_{kind}_ratio", True)] if limit is not None else []
    head = (f'<svg class="kind-hist" id="kind-hist-{kind}" data-kind="{kind}" viewBox="0 0 {SVG_W} {KIND_SVG_H}" '
            f'role="img" aria-label="histogram of per-video {kind} text ratios" data-videos="{len(ratios)}" '
            f'data-bins="{len(bins)}"{"" if limit is None else f" data-max={limit!r}"}>')
    parts = plot_svg(head, Plot(bins, counts, Axis(len(bins)), bar_class, band, lines, KIND_SVG_H,
                                f"{kind} text area ratio per video"))
    n = len(ratios)
    some = int(np.count_nonzero(ratios > 0))
    caption = f"<b>{kind}</b>: {some:,} of {n:,} videos ({share(some, n)}) have some."
    if limit is not None:
        over = int(np.count_nonzero(ratios > limit))
        caption += (f' <span data-over="{over}">{over:,} ({share(over, n)}) are above max_{kind}_ratio {limit:g}'
                    "</span>, dropped whatever their ratio (paler bars).")
    return f'<figure class="k-{kind}">{"".join(parts)}</svg><p class="caption">{caption}</p></figure>'


def _main_kinds(ks: KindScan) -> str:
    rows = []
    total = sum(ks.main.values())
    for kind in (*KINDS, "none"):
        kept, dropped = ks.main[kind, "kept"], ks.main[kind, "dropped"]
        videos = kept + dropped
        rows.append(f'<tr data-kind="{kind}" data-videos="{videos}" data-kept="{kept}" data-dropped="{dropped}">'
                    f'<td class="k-{kind}"><span class="key k-{kind}"></span>{kind}</td><td>{videos:,}</td>'
                    f"<td>{share(videos, total)}</td><td>{kept:,}</td><td>{dropped:,}</td></tr>")
    return ('<h3>Main kind</h3><table id="main-kinds"><thead><tr><th>main kind</th><th>videos</th><th>share</th>'
            f'<th>in kept samples</th><th>in dropped samples</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="caption">A video in several samples counts once per sample; kept and dropped are its '
            "sample's status.</p>")


def card_kinds(video: dict, limits: dict[str, float]) -> str:
    """A card's line of kinds: its main kind and each kind's ratio (in red
    where past the recipe's maximum)."""
    main = str(video.get("main_kind", "none"))
    ratios = video.get("kind_ratios") or {}
    parts = []
    for kind in KINDS:
        r = float(ratios.get(kind, 0.0))
        over = kind in limits and r > limits[kind]
        parts.append(f'<span class="k-{kind}{" over" if over else ""}" data-kind="{kind}" data-ratio="{r!r}">'
                     f"{kind} {f'{r:.4f}' if r else 0}</span>")
    return (f'<br><span class="kinds" data-main-kind="{escape(main)}">main kind <b class="k-{escape(main)}">'
            f'{escape(main)}</b> · {" · ".join(parts)}</span>')


def kind_frames(card: Card, max_side: int | None) -> str:
    """A card's frames, each with its boxes as SVG polygons in their kind's
    colour, titled with their kind."""
    video = card.candidate.video
    path = str(video["video"])
    boxes, kinds = video.get("frame_boxes"), video.get("frame_kinds") or []
    # boxes are in the pixels of the frame the detector saw; the SVG stretches
    # that frame over the thumbnail
    det_w, det_h = scaled_size(int(video["width"]), int(video["height"]), max_side)
    out = []
    for i, t in zip(shown_frames(len(video.get("frame_times") or [])), card.thumbs):
        polys = (boxes[i] if i < len(boxes) else []) if boxes is not None else None
        svg = ""
        if polys is not None:
            frame_kinds = kinds[i] if i < len(kinds) else []
            svg = (f'<svg class="boxes" viewBox="0 0 {det_w} {det_h}" preserveAspectRatio="none" aria-hidden="true">'
                   + "".join(_polygon(p, frame_kinds[j] if j < len(frame_kinds) else "unknown", t.time)
                             for j, p in enumerate(polys)) + "</svg>")
        count = "" if polys is None else f" · {len(polys)} box" + ("" if len(polys) == 1 else "es")
        out.append(f'<div class="frame"><div class="shot"><img class="thumb" src="{t.data_uri}" '
                   f'alt="{escape(os.path.basename(path))} at {t.time:.2f} s" '
                   f'data-boxes="{"" if polys is None else len(polys)}">{svg}</div>'
                   f"<span>{t.time:.2f} s · {t.ratio:.4f}{count}</span></div>")
    return "".join(out)


def _polygon(poly: list[int], kind: str, time: float) -> str:
    points = " ".join(f"{poly[j]},{poly[j + 1]}" for j in range(0, len(poly) - 1, 2))
    return (f'<polygon class="k-{escape(kind)}" data-kind="{escape(kind)}" points="{points}">'
            f"<title>{escape(kind)} text at {time:.2f} s</title></polygon>")
