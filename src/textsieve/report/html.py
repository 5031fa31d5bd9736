"""``textsieve report``: one self-contained HTML page about an export folder.

The page fetches nothing: CSS, the script and the histogram (SVG) are inline
and the gallery's frames are JPEG data URIs, so it can be mailed, archived or
opened on a machine without network. Everything but the what-if slider is
plain HTML, so the page reads the same without JavaScript.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .. import __version__
from ..data.atomic import write_atomic
from ..resources.planner import Plan
from .gallery import Card, render_card
from .histogram import PAD_BOTTOM, PAD_TOP, SVG_H, SVG_W, Axis, Bin, Line, Plot, histogram_counts, plot_svg, share
from .kind_view import KIND_CSS, card_kinds, kind_bins, kind_frames, kind_section, legend
from .scan import Candidate, Scan, scan_export
from .summary import GpuPeak, RunSummary, session_rows
from .typed import to_json

GiB = 2**30
# the what-if table's max_area_ratio rows (plus the recipe's own)
WHATIF_MAX = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
SLIDER_STEPS = 160
GROUP_ORDER = ("inside_max", "outside_max", "inside_min", "outside_min", "highest", "random")


def write_report(export_dir: Path, output: Path | None = None, per_group: int = 8, seed: int = 0) -> Path:
    """Write the report of ``export_dir`` (finished, running or stopped) to
    ``output`` (default ``<export>/report.html``); returns its path."""
    scan = scan_export(Path(export_dir), per_group=per_group, seed=seed)
    output = Path(output) if output is not None else scan.export_dir / "report.html"
    page = render(scan)
    write_atomic(output, page, output.with_name(output.name + ".part"))  # a browser reloading it never sees half a page
    return output


def render(scan: Scan) -> str:
    """The page: every section, and the gallery's frames decoded and drawn."""
    max_side = scan.op.get("max_side")
    kinds = scan.kinds is not None
    cards: dict[str, Card] = {}  # by path: a video in several groups is decoded once
    groups = {}
    for name in GROUP_ORDER:
        if name in ("inside_min", "outside_min") and scan.thresholds.min_ratio <= 0:
            continue  # nothing lies below a min of 0
        groups[name] = []
        for candidate in scan.groups.get(name, []):
            path = candidate.video["video"]
            if path not in cards:
                # runs from before color_conversion existed converted as dj does
                cards[path] = render_card(_plain(candidate) if kinds else candidate, max_side,
                                          scan.op.get("color_conversion", "dj"))
            card = cards[path]
            groups[name].append(Card(candidate, card.thumbs, card.problem))
    bins, counts = histogram_counts(scan.video_ratios)
    if kinds and len(bins) < max(len(histogram_counts(r)[0]) for r in scan.kinds.ratios.values()):
        bins, counts = kind_bins(scan.video_ratios, len(bins) + 1)  # a kind passes 1: one axis for all
    axis = Axis(len(bins))
    body = "\n".join([
        _header(scan),
        _counts(scan),
        _histogram(scan, bins, counts, axis),
        *([kind_section(scan, len(bins))] if kinds else []),
        _whatif(scan, axis),
        _gallery(scan, groups),
        _errors(scan),
        _detector(scan),
        _plan(scan),
        f'<footer>textsieve {escape(__version__)} · generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · '
        "this page is self-contained: it loads nothing from the network</footer>",
    ])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # forbid every fetch: a page that tried one would fail loudly in tests
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>textsieve report: {escape(scan.export_dir.name)}</title><style>{CSS}{KIND_CSS if kinds else ''}"
        "</style></head>\n"
        f"<body>\n<main>\n{body}\n</main>\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


# ---------------------------------------------------------------- sections

def _header(scan: Scan) -> str:
    th, op = scan.thresholds, scan.op
    if scan.finished:
        finished_at = scan.summary.finished_at if scan.summary is not None else ""
        state = f'<span class="badge ok">finished {escape(finished_at)}</span>'
    else:
        state = ('<span class="badge live">running or stopped</span> showing the '
                 f"{scan.judged + sum(scan.errors_by_kind.values()):,} samples written so far (part files); "
                 "run the command again for a fresher page")
    rule = (f"keeps a sample when {th.min_ratio:g} ≤ ratio ≤ {th.max_ratio:g} for "
            f"<b>{escape(th.any_or_all)}</b> of its videos")
    facts = [f"detector <b>{escape(str(op.get('detector', 'craft')))}</b>"]
    if "frame_sample_num" in op:
        facts.append(f"{op['frame_sample_num']} frames per video ({escape(str(op.get('sampling', 'uniform')))})")
    facts.append("native size" if not op.get("max_side") else f"scaled to {op['max_side']} px")
    facts += [f"{name} <code>{escape(str(op[key]))}</code>" for key, name in
              (("area_mode", "area"), ("aggregate", "per-video")) if key in op]
    if scan.kinds is not None:
        facts.append("kinds of text judged" + "".join(f", max {kind} <code>{limit:g}</code>"
                                                      for kind, limit in scan.kinds.limits.items()))
    return (
        '<header><h1>textsieve report</h1>'
        f'<p class="path">{escape(str(scan.export_dir))}</p>'
        f"<p>{state}</p>"
        f"<p>The recipe {rule}; {', '.join(facts)}.</p>"
        f'<nav><a href="#ratios">histogram</a>{"<a href=#kinds>kinds</a>" if scan.kinds else ""}'
        '<a href="#whatif-section">what-if</a><a href="#gallery">gallery</a>'
        '<a href="#errors-section">errors</a><a href="#detector">detector</a><a href="#plan">plan and resources</a></nav>'
        "</header>"
    )


def _counts(scan: Scan) -> str:
    if scan.finished and scan.summary is not None:
        counts: dict[str, Any] = to_json(scan.summary.counts)
    else:  # what the part files hold: the input and the check come with the summary
        counts = {"input": None, "kept": scan.status["kept"], "dropped": scan.status["dropped"],
                  "error": sum(scan.errors_by_kind.values()), "adds_up": None}
    tiles = []
    for key in ("input", "kept", "dropped", "error", "adds_up"):
        value = counts[key]
        if key == "adds_up":
            text = "—" if value is None else ("yes" if value else "NO")
            cls = "" if value is None else (" good" if value else " bad")
        else:
            text, cls = ("—" if value is None else f"{value:,}"), ""
        label = {"adds_up": "adds up", "error": "errors"}.get(key, key)
        tiles.append(f'<div class="kpi{cls}" data-key="{key}" data-value="{"" if value is None else value}">'
                     f"<b>{text}</b><span>{label}</span></div>")
    note = "" if scan.finished else ('<p class="note">The input count and the check that kept + dropped + errors '
                                     "add up to it come with summary.json, when the run finishes.</p>")
    return f'<section id="counts-section"><div id="counts" class="kpis">{"".join(tiles)}</div>{note}</section>'


def _histogram(scan: Scan, bins: list[Bin], counts: list[int], axis: Axis) -> str:
    th = scan.thresholds
    head = (f'<svg id="histogram" viewBox="0 0 {SVG_W} {SVG_H}" role="img" '
            f'aria-label="histogram of per-video text area ratios" data-videos="{len(scan.video_ratios)}" '
            f'data-bins="{len(bins)}" data-min="{th.min_ratio!r}" data-max="{th.max_ratio!r}">')
    lines = [Line(th.min_ratio, "threshold-min", "min", False), Line(th.max_ratio, "threshold-max", "max", True)]
    parts = plot_svg(head, Plot(bins, counts, axis, lambda b: f"bar {b.side(th)}", th, lines))
    base = PAD_TOP + SVG_H - PAD_TOP - PAD_BOTTOM
    x_hi = axis.x(th.max_ratio, is_max=True)
    parts.append(f'<line class="whatif" id="whatif-line" x1="{x_hi:.1f}" x2="{x_hi:.1f}" y1="{PAD_TOP}" y2="{base}" '
                 'visibility="hidden"/>')
    parts.append("</svg>")
    caption = _histogram_caption(scan)
    return (f'<section id="ratios"><h2>Text area ratio per video</h2>{"".join(parts)}'
            f'<p class="caption">{caption}</p></section>')


def _histogram_caption(scan: Scan) -> str:
    th = scan.thresholds
    n = len(scan.video_ratios)
    inside = int(np.count_nonzero((scan.video_ratios >= th.min_ratio) & (scan.video_ratios <= th.max_ratio)))
    return (f"{n:,} judged videos (a video in several samples counts once per sample); "
            f"{inside:,} ({share(inside, n)}) lie within [{th.min_ratio:g}, {th.max_ratio:g}]. "
            '<span class="key in"></span> bin inside the range <span class="key part"></span> partly '
            '<span class="key out"></span> outside. Hover a bar for its exact count.')


def _whatif(scan: Scan, axis: Axis) -> str:
    th = scan.thresholds
    judged = scan.judged
    rows = sorted({m for m in WHATIF_MAX if m >= th.min_ratio} | {th.max_ratio})
    kept = scan.kept_at(np.array(rows))
    recipe_kept = int(scan.kept_at(np.array([th.max_ratio]))[0])
    body = []
    for m, k in zip(rows, kept.tolist()):
        recipe = m == th.max_ratio
        delta = "recipe" if recipe else f"{k - recipe_kept:+,}"
        body.append(f'<tr data-max="{m!r}" data-kept="{k}"{" class=recipe" if recipe else ""}>'
                    f"<td>{m:g}</td><td>{k:,}</td><td>{share(k, judged)}</td><td>{judged - k:,}</td>"
                    f"<td>{delta}</td></tr>")
    # the slider walks a finer log grid (3 digits: the values it shows are the
    # values counted); its counts come from the same rule
    hi_end = max(1.0, float(scan.video_ratios.max()) if len(scan.video_ratios) else 1.0)
    grid = sorted({float(f"{t:.3g}") for t in np.geomspace(1e-4, hi_end, SLIDER_STEPS + 1)} | set(rows))
    grid = [t for t in grid if t >= th.min_ratio]
    grid_kept = scan.kept_at(np.array(grid)).tolist()
    data = {"t": grid, "k": grid_kept, "x": [round(axis.x(t, True), 1) for t in grid], "judged": judged,
            "start": grid.index(th.max_ratio)}
    note = ""
    if scan.status["kept"] != recipe_kept:
        note = (f'<p class="note warn">stats.jsonl marks {scan.status["kept"]:,} samples kept, but its ratios at the '
                f"recipe's thresholds keep {recipe_kept:,}: the stats were decided with other thresholds.</p>")
    return (
        '<section id="whatif-section"><h2>What if: samples kept against max_area_ratio</h2>'
        f'<p>At the recipe\'s min_area_ratio {th.min_ratio:g} and any_or_all <b>{escape(th.any_or_all)}</b>'
        f'{" with <b>reversed_range</b> (videos outside the range are kept)" if th.reversed_range else ""}'
        f'{_kind_limits_note(scan)}, '
        f"over the {judged:,} judged samples (errors are neither; a sample without videos is always kept: "
        f"{scan.no_video_samples:,}). <code>textsieve decide --export {escape(str(scan.export_dir))} "
        "--max-area-ratio M</code> applies one to the outputs without detecting again.</p>"
        '<div id="slider" hidden><label for="whatif-slider">max_area_ratio</label>'
        f'<input type="range" id="whatif-slider" min="0" max="{len(grid) - 1}" step="1" value="{data["start"]}">'
        '<output id="whatif-out" for="whatif-slider"></output></div>'
        '<table id="whatif"><thead><tr><th>max_area_ratio</th><th>kept</th><th>share kept</th><th>dropped</th>'
        f'<th>vs recipe</th></tr></thead><tbody>{"".join(body)}</tbody></table>{note}'
        f'<script type="application/json" id="whatif-data">{_json(data)}</script></section>'
    )


def _kind_limits_note(scan: Scan) -> str:
    if scan.kinds is None or not scan.kinds.limits:
        return ""
    limits = ", ".join(f"max_{kind}_ratio {limit:g}" for kind, limit in scan.kinds.limits.items())
    return f" and its per-kind maxima ({escape(limits)}: a video past one is never kept)"


def _json(data: Any) -> str:
    # inside <script>, "</" would end the element
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def _gallery(scan: Scan, groups: dict[str, list[Card]]) -> str:
    th = scan.thresholds
    titles = {
        "inside_max": (f"Just inside max: the largest ratios ≤ {th.max_ratio:g}", "the last videos the recipe keeps"),
        "outside_max": (f"Just outside max: the smallest ratios > {th.max_ratio:g}", "the first it drops"),
        "inside_min": (f"Just inside min: the smallest ratios ≥ {th.min_ratio:g}", ""),
        "outside_min": (f"Just outside min: the largest ratios < {th.min_ratio:g}", ""),
        "highest": ("Highest ratios", ""),
        "random": ("A random sample", "seeded: the same page each time"),
    }
    out = []
    frames = 0
    for name, cards in groups.items():
        title, sub = titles[name]
        items = "".join(_card(card, scan) for card in cards) or '<p class="none">no video here</p>'
        frames += sum(len(card.thumbs) for card in cards)
        out.append(f'<section class="group" data-group="{name}" data-count="{len(cards)}"><h3>{escape(title)} '
                   f'<small>{len(cards)} video(s){" · " + escape(sub) if sub else ""}</small></h3>'
                   f'<div class="cards">{items}</div></section>')
    boxes = ("boxes as the detector found them (yellow)" if scan.op.get("save_boxes", True)
             else "no boxes: the run had save_boxes off")
    key = ""
    if scan.kinds is not None and scan.op.get("save_boxes", True):
        boxes = "boxes as the detector found them, in the colour of their kind (hover one to read it)"
        key = legend()
    min_note = "" if th.min_ratio > 0 else " The min is 0, so no video lies below it."
    total = sum(len(c) for c in groups.values())
    return (f'<section id="gallery" data-cards="{total}" data-frames="{frames}"><h2>Frames</h2>'
            f"<p>The sampled frames of a few videos per group, decoded again at the times in stats.jsonl, with the "
            f"{boxes}; the numbers are each frame's ratio.{min_note}</p>{key}{''.join(out)}</section>")


def _card(card: Card, scan: Scan) -> str:
    c, video = card.candidate, card.candidate.video
    path = str(video["video"])
    who = f" · {escape(str(video['decided_by']))}" if "decided_by" in video else ""
    kinds = card_kinds(video, scan.kinds.limits) if scan.kinds is not None else ""
    head = (f'<figcaption><b>{video["ratio"]:.4f}</b> · sample {c.index} · <span class="{c.status}">{c.status}</span>'
            f'{who}<br><span class="file" title="{escape(path)}">{escape(os.path.basename(path))}</span>{kinds}'
            "</figcaption>")
    if card.problem is not None:
        frames = f'<div class="placeholder" data-state="unreadable">{escape(card.problem)}</div>'
    elif scan.kinds is not None:
        frames = kind_frames(card, scan.op.get("max_side"))
    else:
        frames = "".join(
            f'<div class="frame"><img class="thumb" src="{t.data_uri}" alt="{escape(os.path.basename(path))} at '
            f'{t.time:.2f} s" data-boxes="{"" if t.boxes is None else t.boxes}"><span>{t.time:.2f} s · '
            f'{t.ratio:.4f}{"" if t.boxes is None else f" · {t.boxes} box" + ("" if t.boxes == 1 else "es")}'
            "</span></div>"
            for t in card.thumbs)
    return (f'<figure class="card" data-index="{c.index}" data-ratio="{video["ratio"]!r}" '
            f'data-frames="{len(card.thumbs)}"><div class="frames">{frames}</div>{head}</figure>')


def _plain(candidate: Candidate) -> Candidate:
    """The candidate without its boxes, for a run that judged kinds: its
    thumbnails are bare frames, and its boxes are drawn over them in SVG."""
    return Candidate(candidate.index, candidate.status,
                     {k: v for k, v in candidate.video.items() if k != "frame_boxes"})


def _errors(scan: Scan) -> str:
    total = sum(scan.errors_by_kind.values())
    if not total:
        return '<section id="errors-section"><h2>Errors</h2><p id="errors" data-total="0">No sample failed.</p></section>'
    rows = []
    for kind, count in scan.errors_by_kind.most_common():
        examples = "".join(
            f'<li><span class="idx">sample {escape(str(e.get("index")))}</span> <code>{escape(str(e.get("message")))}'
            "</code></li>" for e in scan.error_examples.get(kind, []))
        rows.append(f'<tr data-kind="{escape(kind)}" data-count="{count}"><td><code>{escape(kind)}</code></td>'
                    f"<td>{count:,}</td><td><ul>{examples}</ul></td></tr>")
    return ('<section id="errors-section"><h2>Errors</h2>'
            f"<p>{total:,} samples could not be judged; each is in errors.jsonl with its sample. Transient kinds "
            "(timeout, worker_crashed, gpu_oom, detector_error, remote_read) are judged again by "
            "<code>textsieve run ... --retry-errors</code>.</p>"
            f'<table id="errors" data-total="{total}"><thead><tr><th>kind</th><th>samples</th><th>examples</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></section>')


def _detector(scan: Scan) -> str:
    op = scan.op
    videos = len(scan.video_ratios)
    rows = [("detector", op.get("detector", "craft")),
            ("frames", "native size" if not op.get("max_side") else f"scaled to {op['max_side']} px long side")]
    if op.get("calibration"):
        rows.append(("calibration", op["calibration"]))
    summary = scan.summary
    if summary is not None:
        rows.append(("ratios on the scale of", summary.ratios.scale))
    run_detector = summary.detector if summary is not None else None
    for key in ("device", "batch_size", "calls", "oom_backoffs", "cpu_fallback_frames", "failed_frames"):
        value = getattr(run_detector, key, None)
        if value is not None:
            rows.append((key.replace("_", " "), value))
    out = [_table(rows, "facts")]
    if scan.decided_by:
        decided = sum(scan.decided_by.values())
        craft = scan.decided_by.get("craft", 0)
        out.append(f'<p id="cascade" data-share-craft="{craft / decided:.4f}">Under the cascade, '
                   f"<b>{share(craft, decided)}</b> of the {decided:,} videos were sent to CRAFT; the fast detector "
                   "decided the rest.</p>")
        out.append(_table([(k, f"{v:,} ({share(v, decided)})") for k, v in scan.decided_by.most_common()],
                          "decided_by", ("decided by", "videos")))
        if scan.routed:
            out.append(_table([(k, f"{v:,}") for k, v in scan.routed.most_common()], "why_sent",
                              ("why CRAFT re-judged it", "videos")))
    else:
        out.append(f"<p>All {videos:,} judged videos were decided by {escape(str(op.get('detector', 'craft')))}.</p>")
    if scan.outside_calibration:
        out.append(f'<p class="note warn">{scan.outside_calibration:,} videos had a raw ratio outside the range the '
                   "calibration was fitted on.</p>")
    return f'<section id="detector"><h2>Detector</h2>{"".join(out)}</section>'


def _plan(scan: Scan) -> str:
    summary = scan.summary if scan.finished else None
    if summary is None:
        return ('<section id="plan"><h2>Plan and resources</h2><p>The plan, resource peaks and throughput are in '
                "summary.json, written when the run finishes.</p></section>")
    out = []
    if summary.plan is not None:
        out.append(_plan_block(summary.plan, summary.executor))
    for node in summary.executor_detail.nodes if summary.executor_detail is not None else []:
        out.append(f"<h3>node {escape(node.address or node.node)}</h3>" + _plan_block(node.plan, "ray"))
    session = summary.this_session
    rows = [(k.replace("_", " "), v) for k, v in session_rows(session)]
    rows += [(f"time in {k}, s", v) for k, v in session.timings_s.items()]
    out.append(f'<div class="row"><div>{_resources(summary)}</div>'
               f'<div>{"<h3>This session</h3>" + _table(rows, "session") if rows else ""}</div></div>')
    return f'<section id="plan"><h2>Plan and resources</h2>{"".join(out)}</section>'


def _plan_block(plan: Plan, executor: str) -> str:
    replicas = Counter(r.device for r in plan.replicas)
    threads = sorted({r.threads for r in plan.replicas if r.device == "cpu"})
    cost = plan.cost
    rows = [
        ("executor", executor),
        ("device kind", plan.device_kind),
        ("detector replicas", ", ".join(f"{n} on {d}" for d, n in sorted(replicas.items())) or "none"),
        ("decoders", f"{plan.decoders} × {plan.decoder_threads} FFmpeg thread(s)"),
        ("batch", plan.batch_size),
    ]
    if threads:
        rows.append(("threads per CPU replica", ", ".join(str(t) for t in threads)))
    rows.append(("per-replica cost", f"{_gib(cost.gpu_bytes)} GPU, {_gib(cost.host_bytes)} host ({cost.source})"))
    if plan.error:
        rows.append(("error", plan.error))
    out = [_table(rows, "plan-facts")]
    if plan.gpus:
        head = ("gpu", "name", "total", "free", "reserve", "budget", "replicas", "why")
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
                g.index, g.name, _gib(g.total), _gib(g.free), _gib(g.reserve), _gib(g.budget), g.replicas,
                g.reason)) + "</tr>"
            for g in plan.gpus)
        out.append(f'<table class="wide"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
                   f"<tbody>{body}</tbody></table>")
    if plan.reasons:
        out.append("<details><summary>why these numbers</summary><ul>"
                   + "".join(f"<li>{escape(str(r))}</li>" for r in plan.reasons) + "</ul></details>")
    return "".join(out)


def _resources(summary: RunSummary) -> str:
    res = summary.resources
    rows: list[tuple[str, Any]] = [("peak host memory (supervisor)", _gib(res.peak_host_rss_bytes))]
    for idx, g in sorted(res.gpus.items()):
        rows.append((f"GPU {idx} {g.name or ''}", _peak(g)))
    for node, info in sorted((summary.node_resources or {}).items()):
        rows.append((f"node {node}", f"peak actor memory {_gib(info.peak_actor_rss_bytes)}"))
        for key, g in sorted(info.gpus.items()):
            rows.append((f"node {node} GPU {key}", _peak(g)))
    return "<h3>Resource peaks</h3>" + _table(rows, "resources")


def _peak(gpu: GpuPeak) -> str:
    warn = " — came within its reserve" if gpu.came_within_reserve else ""
    return f"peak {_gib(gpu.peak_used_bytes)} of {_gib(gpu.total_bytes)}{warn}"


def _gib(n: Any) -> str:
    return "?" if n is None else f"{n / GiB:.2f} GiB"


def _table(rows: Iterable[tuple[str, Any]], table_id: str, head: tuple[str, str] | None = None) -> str:
    thead = f"<thead><tr><th>{escape(head[0])}</th><th>{escape(head[1])}</th></tr></thead>" if head else ""
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="facts" id="{table_id}">{thead}<tbody>{body}</tbody></table>'


CSS = """
:root{--ink:#1d2733;--muted:#5b6775;--line:#d9dee4;--bg:#f5f7f9;--in:#2a9d8f;--out:#e76f51;--part:#e9c46a}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,"DejaVu Sans","Liberation Sans",sans-serif}
main{max-width:1100px;margin:0 auto;padding:20px 24px 40px}
header h1{margin:0 0 2px;font-size:24px}
.path{margin:0;color:var(--muted);font-family:"DejaVu Sans Mono",monospace;font-size:12px;overflow-wrap:anywhere}
nav{display:flex;gap:16px;margin-top:8px}nav a{color:#1f6feb;text-decoration:none}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin-top:16px}
h2{margin:0 0 10px;font-size:18px}h3{margin:16px 0 8px;font-size:15px}h3 small{color:var(--muted);font-weight:normal}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.ok{background:#d7f2ec;color:#146356}.badge.live{background:#fdf0c9;color:#7a5600}
.kpis{display:flex;gap:12px;flex-wrap:wrap}
.kpi{flex:1;min-width:110px;border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.kpi b{display:block;font-size:24px}.kpi span{color:var(--muted)}
.kpi.good b{color:#146356}.kpi.bad b{color:#b42318}
.note{color:var(--muted)}.warn{color:#9a3412}
svg{width:100%;height:auto;display:block}
.bar.in{fill:var(--in)}.bar.out{fill:var(--out)}.bar.part{fill:var(--part)}
.band{fill:var(--in);opacity:.08}
.grid{stroke:#eceff3}.axis{stroke:#8893a0}
.count{font-size:10px;text-anchor:middle;fill:var(--ink)}
.ytick{font-size:10px;text-anchor:end;fill:var(--muted)}.xtick{font-size:11px;text-anchor:middle;fill:var(--muted)}
.xtitle{font-size:12px;text-anchor:middle;fill:var(--muted)}.ytitle{font-size:12px;text-anchor:middle;fill:var(--muted)}
.threshold{stroke:#b42318;stroke-width:2}.tlabel{font-size:12px;font-weight:600;fill:#b42318}
.whatif{stroke:#1f6feb;stroke-width:2;stroke-dasharray:5 4}
.caption{color:var(--muted);margin:6px 0 0}
.key{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 3px 0 6px}
.key.in{background:var(--in)}.key.out{background:var(--out)}.key.part{background:var(--part)}
table{border-collapse:collapse;margin:6px 0}th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left;
vertical-align:top}
#whatif td,#whatif th{text-align:right}#whatif tr.recipe{background:#e8f3ff;font-weight:600}
table.facts th{font-weight:normal;color:var(--muted)}
#errors ul{margin:0;padding-left:16px}#errors code{font-size:12px;overflow-wrap:anywhere}
#errors td:first-child code{overflow-wrap:normal;white-space:nowrap}
.row{display:flex;gap:40px;flex-wrap:wrap}
#slider{display:flex;align-items:center;gap:12px;margin:8px 0}#slider input{flex:1}
#whatif-out{min-width:360px;font-weight:600}
.group{border:0;padding:0;margin-top:6px;background:none}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.card{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px;background:#fafbfc}
.frames{display:flex;gap:6px}
.frame{flex:1;min-width:0}.frame img{width:100%;display:block;border-radius:3px}
.frame span{font-size:11px;color:var(--muted)}
figcaption{margin-top:4px;font-size:12px}.file{color:var(--muted);font-family:"DejaVu Sans Mono",monospace}
.kept{color:#146356;font-weight:600}.dropped{color:#b42318;font-weight:600}
.placeholder{flex:1;min-height:90px;display:flex;align-items:center;justify-content:center;text-align:center;
padding:10px;background:repeating-linear-gradient(45deg,#eef0f3,#eef0f3 8px,#e6e9ed 8px,#e6e9ed 16px);
color:var(--muted);font-size:12px;border-radius:3px;overflow-wrap:anywhere}
.none{color:var(--muted)}
footer{margin-top:16px;color:var(--muted);font-size:12px;text-align:center}
"""

# The slider: reads the what-if grid embedded as JSON, shows the kept count
# at the chosen max_area_ratio and moves a line on the histogram.
SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('whatif-data').textContent);
  var slider = document.getElementById('whatif-slider');
  var out = document.getElementById('whatif-out');
  var line = document.getElementById('whatif-line');
  function show() {
    var i = Number(slider.value), kept = data.k[i], t = data.t[i];
    var share = data.judged ? (100 * kept / data.judged).toFixed(1) + '%' : '-';
    out.textContent = '\\u2264 ' + t + ': ' + kept.toLocaleString('en-US') + ' of ' +
      data.judged.toLocaleString('en-US') + ' samples kept (' + share + ')';
    out.dataset.kept = kept;
    line.setAttribute('x1', data.x[i]);
    line.setAttribute('x2', data.x[i]);
    line.setAttribute('visibility', i === data.start ? 'hidden' : 'visible');
  }
  slider.addEventListener('input', show);
  document.getElementById('slider').hidden = false;
  show();
})();
"""
