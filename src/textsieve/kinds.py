"""What kind of text each box is: overlay, subtitle, screen or scene (issue 26).

Pure functions over one video's detections (no I/O, no model): the boxes of
its sampled frames, in time order, as the detectors return them
(:class:`textsieve.detect.area.Detections`: CRAFT's horizontal
``(xmin, xmax, ymin, ymax)`` boxes and free quads, PP-OCR's quads), and the
frame size they refer to. Every rule works in shares of the frame's width
and height, so boxes found on scaled frames classify as those on native ones.

Each box gets one kind, decided in this order (docs/kinds.md):

1. ``subtitle``: a horizontal line, centred, in a band near the bottom (or
   top), away from the frame's very edge, which goes away before the video
   ends (its content changes) while another frame holds such a line in the
   same rows (the band stays).
2. ``screen``: every other box of a *screen frame*, one whose interior (away
   from the edges) holds at least ``screen_min_lines`` boxes covering
   ``screen_min_share`` of the frame, or one still title line (at the same
   place in another frame) taller than ``screen_title_height``: slides,
   screen recordings, credits, title cards.
3. ``overlay``: a box at the same place (IoU >= ``persist_iou``) in at least
   ``overlay_min_persistence`` of the other frames, near an edge:
   watermarks, logos, score bugs, device read-outs.
4. ``scene``: the rest; text that moves with the camera, at any place.

Per-kind ratios use Data-Juicer's area formula (``area_mode="dj"``): each
box's own area, summed. That formula is additive over boxes, so per frame
the ratios of the four kinds sum to the frame's Data-Juicer ratio, and per
video (the mean over frames, as Data-Juicer aggregates) to the video's
ratio, equal up to float rounding (the sums run in another order). Under
``area_mode="union"`` a kind's ratio is the union of its own boxes, and the
kinds' ratios sum to at least the total (equal when no two boxes of
different kinds overlap).

Cosmos-Curate's ``ArtificialTextFilterStage`` rule is here too
(:func:`cosmos_overlay`), as the baseline the kinds are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from .detect.area import AreaMode, Detections, dj_text_area, union_text_area
from .kind_rules import KINDS, Kind, KindRules, MainKind  # settings apart: config imports them without numpy


@dataclass(frozen=True)
class Box:
    """One detected box, as the rules see it: its axis-aligned extent in
    shares of the frame (``x0 <= x1``, ``y0 <= y1``) and its area in pixels
    by Data-Juicer's formula."""

    frame: int  # index of its frame in the video's sampled frames
    index: int  # index in its frame: horizontal boxes first, then free quads (area.polygons' order)
    x0: float
    y0: float
    x1: float
    y1: float
    area: float  # pixels, dj_text_area of this box alone

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class FrameKinds:
    """One frame's boxes with their kinds, in area.polygons' order, and the
    share of the frame each kind covers."""

    time: float
    kinds: list[Kind]
    ratios: dict[Kind, float]  # every kind present as a key, 0.0 when absent
    ratio: float  # all boxes, the frame's ratio under the same area mode
    screen_frame: bool


@dataclass(frozen=True)
class VideoKinds:
    """One video's kinds: per frame, and per video as the mean over frames."""

    frame_size: tuple[int, int]
    area_mode: AreaMode
    frames: list[FrameKinds]
    ratios: dict[Kind, float]  # mean over frames of each kind's frame ratio
    ratio: float  # mean over frames of the frames' ratios (Data-Juicer's video ratio in dj mode)
    main_kind: MainKind  # the kind with the largest ratio; "none" when no box has area

    def count(self) -> dict[Kind, int]:
        """Boxes of each kind over all frames."""
        out: dict[Kind, int] = {k: 0 for k in KINDS}
        for frame in self.frames:
            for kind in frame.kinds:
                out[kind] += 1
        return out

    def counted_ratio(self, kinds: Sequence[Kind]) -> float:
        """The video's ratio counting only ``kinds`` (``count_kinds``):
        additive, so exact in ``dj`` mode only (in ``union`` mode an
        upper bound)."""
        return sum(self.ratios[k] for k in kinds)


def boxes_of(det: Detections, frame: int, width: int, height: int) -> list[Box]:
    """The boxes of one frame in area.polygons' order, in shares of the frame."""
    out: list[Box] = []
    for i, (xmin, xmax, ymin, ymax) in enumerate(det.horizontal):
        out.append(Box(frame, i, min(xmin, xmax) / width, min(ymin, ymax) / height, max(xmin, xmax) / width,
                       max(ymin, ymax) / height, dj_text_area([[xmin, xmax, ymin, ymax]], [])))
    offset = len(det.horizontal)
    for j, quad in enumerate(det.free):
        xs, ys = [p[0] for p in quad], [p[1] for p in quad]
        out.append(Box(frame, offset + j, min(xs) / width, min(ys) / height, max(xs) / width, max(ys) / height,
                       dj_text_area([], [quad])))
    return out


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes' extents."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _present(box: Box, frame: list[Box], threshold: float) -> bool:
    return any(iou(box, other) >= threshold for other in frame)


def persistence(box: Box, frames: list[list[Box]], threshold: float) -> float:
    """Share of the other frames holding a box at ``box``'s place."""
    others = [f for i, f in enumerate(frames) if i != box.frame]
    if not others:
        return 0.0
    return sum(_present(box, f, threshold) for f in others) / len(others)


def near_edge(box: Box, margin: float) -> bool:
    return min(box.x0, box.y0, 1 - box.x1, 1 - box.y1) <= margin


def interior(box: Box, margin: float) -> bool:
    """The box's centre lies away from every edge."""
    return margin < box.cx < 1 - margin and margin < box.cy < 1 - margin


def subtitle_line(box: Box, rules: KindRules, aspect: float) -> bool:
    """Where and what shape a subtitle line is, without looking at time.
    ``aspect`` is the frame's width over its height (shares to pixels)."""
    in_band = box.y0 >= 1 - rules.subtitle_bottom_band or box.y1 <= rules.subtitle_top_band
    return (in_band
            and abs(box.cx - 0.5) <= rules.subtitle_centre_tolerance
            and min(box.y0, 1 - box.y1) >= rules.subtitle_min_edge_gap
            and box.height <= rules.subtitle_max_line_height
            and box.width * aspect >= rules.subtitle_min_aspect * box.height)


def goes_away(box: Box, frames: list[list[Box]], threshold: float) -> bool:
    """Whether some later frame no longer holds a box at ``box``'s place:
    the line's content changed (or it ended) while the video went on."""
    return any(not _present(box, f, threshold) for f in frames[box.frame + 1:])


def band_stays(box: Box, frames: list[list[Box]], candidates: list[list[bool]], threshold: float) -> bool:
    """Whether another frame holds a subtitle-shaped line in the same rows."""
    for i, (boxes, flags) in enumerate(zip(frames, candidates)):
        if i == box.frame:
            continue
        for other, flag in zip(boxes, flags):
            inter = min(box.y1, other.y1) - max(box.y0, other.y0)
            union = max(box.y1, other.y1) - min(box.y0, other.y0)
            if flag and inter > 0 and inter / union >= threshold:
                return True
    return False


def screen_frame(boxes: list[Box], frames: list[list[Box]], rules: KindRules) -> bool:
    """Whether a frame's interior text is a screen's: several lines covering
    a share of the frame, or a still title line of large type (a title card
    holds still, away from the edges; a large sign passing the camera does
    not, and a large logo at the edge is an overlay)."""
    inner = [b for b in boxes if interior(b, rules.edge_margin)]
    share = sum(b.width * b.height for b in inner)
    return ((len(inner) >= rules.screen_min_lines and share >= rules.screen_min_share)
            or any(b.height >= rules.screen_title_height and b.width >= b.height
                   and not near_edge(b, rules.edge_margin)  # a large logo at the edge is an overlay
                   and persistence(b, frames, rules.persist_iou) > 0 for b in inner))


def classify_boxes(frames: list[list[Box]], rules: KindRules, aspect: float) -> tuple[list[list[Kind]], list[bool]]:
    """Each box's kind, and which frames are screen frames (the order of the
    rules is the module's docstring's)."""
    kinds: list[list[Kind]] = []
    screens: list[bool] = []
    lines = [[subtitle_line(b, rules, aspect) for b in boxes] for boxes in frames]
    for boxes, flags in zip(frames, lines):
        subtitles = [flag and goes_away(b, frames, rules.persist_iou)
                     and band_stays(b, frames, lines, rules.subtitle_band_iou) for b, flag in zip(boxes, flags)]
        is_screen = screen_frame([b for b, s in zip(boxes, subtitles) if not s], frames, rules)
        screens.append(is_screen)
        row: list[Kind] = []
        for box, subtitle in zip(boxes, subtitles):
            if subtitle:
                row.append("subtitle")
            elif is_screen:
                row.append("screen")
            elif (near_edge(box, rules.edge_margin)
                  and persistence(box, frames, rules.persist_iou) >= rules.overlay_min_persistence
                  and len(frames) > 1):
                row.append("overlay")
            else:
                row.append("scene")
        kinds.append(row)
    return kinds, screens


def _kind_ratios(det: Detections, kinds: list[Kind], width: int, height: int, mode: AreaMode) -> dict[Kind, float]:
    n_h = len(det.horizontal)
    out: dict[Kind, float] = {}
    for kind in KINDS:
        horizontal = [b for i, b in enumerate(det.horizontal) if kinds[i] == kind]
        free = [q for j, q in enumerate(det.free) if kinds[n_h + j] == kind]
        if mode == "dj":
            area = dj_text_area(horizontal, free)
        else:
            area = union_text_area(horizontal, free, width, height) if horizontal or free else 0.0
        out[kind] = area / (width * height)
    return out


def _frame_ratio(det: Detections, width: int, height: int, mode: AreaMode) -> float:
    if mode == "dj":
        return dj_text_area(det.horizontal, det.free) / (width * height)
    return union_text_area(det.horizontal, det.free, width, height) / (width * height)


def classify_video(detections: Sequence[Detections], frame_size: tuple[int, int], times: Sequence[float],
                   rules: KindRules = KindRules(), area_mode: AreaMode = "dj") -> VideoKinds:
    """Kinds of every box of one video's sampled frames and the per-kind
    ratios. ``detections``: one per frame, in time order; ``frame_size``:
    (width, height) of the pixels the boxes are in; ``times``: each frame's
    time in seconds (kept in the result; the rules use the frames' order).
    Boxes a detector refused (``Detections.rejected``) get no kind and no
    area, as they have none in the ratio."""
    width, height = frame_size
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if len(times) != len(detections):
        raise ValueError(f"{len(detections)} frames of detections but {len(times)} times; give one time per frame")
    frames = [boxes_of(det, i, width, height) for i, det in enumerate(detections)]
    kinds, screens = classify_boxes(frames, rules, width / height)
    out_frames = [FrameKinds(time=float(t), kinds=k, ratios=_kind_ratios(det, k, width, height, area_mode),
                             ratio=_frame_ratio(det, width, height, area_mode), screen_frame=s)
                  for det, k, t, s in zip(detections, kinds, times, screens)]
    n = len(out_frames)
    ratios: dict[Kind, float] = {k: (sum(f.ratios[k] for f in out_frames) / n if n else 0.0) for k in KINDS}
    ratio = sum(f.ratio for f in out_frames) / n if n else 0.0
    main: MainKind = max(KINDS, key=lambda k: ratios[k]) if any(ratios[k] > 0 for k in KINDS) else "none"
    return VideoKinds(frame_size=(width, height), area_mode=area_mode, frames=out_frames, ratios=ratios, ratio=ratio,
                      main_kind=main)


def transfer_kinds(detections: Sequence[Detections], frame_size: tuple[int, int], times: Sequence[float],
                   reference: VideoKinds, reference_detections: Sequence[Detections], min_cover: float = 0.5,
                   rules: KindRules = KindRules(), area_mode: AreaMode = "dj") -> VideoKinds:
    """Kinds for other frames of the same video (Data-Juicer's frames, maybe
    another detector and frame size), judged on ``reference`` (the
    ``kind_frames`` analysis). A box takes the kind of the reference box that
    covers most of it, at least ``min_cover`` of its extent, in the reference
    frame nearest in time; a box no reference box covers keeps the kind the
    rules give it on ``detections`` alone. Ratios are those of
    ``detections``, so in ``dj`` mode the kinds' ratios sum to their
    Data-Juicer ratio."""
    own = classify_video(detections, frame_size, times, rules, area_mode)
    if not reference.frames:
        return own
    rw, rh = reference.frame_size
    ref_boxes = [boxes_of(det, i, rw, rh) for i, det in enumerate(reference_detections)]
    width, height = frame_size
    out_frames = []
    for i, (det, t, frame) in enumerate(zip(detections, times, own.frames)):
        nearest = min(range(len(reference.frames)), key=lambda j: abs(reference.frames[j].time - t))
        kinds: list[Kind] = []
        for box, kind in zip(boxes_of(det, i, width, height), frame.kinds):
            best, best_cover = kind, min_cover
            for ref, ref_kind in zip(ref_boxes[nearest], reference.frames[nearest].kinds):
                cover = _cover(box, ref)
                if cover >= best_cover:
                    best, best_cover = ref_kind, cover
            kinds.append(best)
        out_frames.append(FrameKinds(time=frame.time, kinds=kinds,
                                     ratios=_kind_ratios(det, kinds, width, height, area_mode),
                                     ratio=frame.ratio, screen_frame=frame.screen_frame))
    n = len(out_frames)
    ratios: dict[Kind, float] = {k: (sum(f.ratios[k] for f in out_frames) / n if n else 0.0) for k in KINDS}
    main: MainKind = max(KINDS, key=lambda k: ratios[k]) if any(ratios[k] > 0 for k in KINDS) else "none"
    return VideoKinds(frame_size=own.frame_size, area_mode=area_mode, frames=out_frames, ratios=ratios,
                      ratio=own.ratio, main_kind=main)


def _cover(box: Box, ref: Box) -> float:
    """Share of ``box``'s extent inside ``ref``'s."""
    w = min(box.x1, ref.x1) - max(box.x0, ref.x0)
    h = min(box.y1, ref.y1) - max(box.y0, ref.y0)
    own = box.width * box.height
    return w * h / own if w > 0 and h > 0 and own > 0 else 0.0


# ---- the baseline: Cosmos-Curate v1.3's ArtificialTextFilterStage rule ----

class CosmosRule(BaseModel):
    """Cosmos-Curate's overlay rule as its description gives it (ANCHORS.md):
    a box track with IoU >= 0.9 over at least 10 sampled frames, or text near
    the corners (10% margins) in more than 10% of the frames. Cosmos samples
    every 3rd frame at 640 px; on other frames the counts mean other spans."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    track_iou: float = Field(0.9, gt=0, le=1)
    min_track_frames: int = Field(10, ge=1)
    corner_margin: float = Field(0.1, ge=0, le=0.5)
    min_corner_frame_share: float = Field(0.1, ge=0, le=1)


@dataclass(frozen=True)
class CosmosVerdict:
    overlay: bool
    longest_track: int  # consecutive sampled frames of the longest IoU track
    corner_frame_share: float  # share of frames with a box in a corner region


def in_corner(box: Box, margin: float) -> bool:
    """The box's centre is in one of the four corner squares of ``margin``
    (our reading of "near the corners (10% margins)")."""
    return ((box.cx <= margin or box.cx >= 1 - margin) and (box.cy <= margin or box.cy >= 1 - margin))


def cosmos_overlay(detections: Sequence[Detections], frame_size: tuple[int, int],
                   rule: CosmosRule = CosmosRule()) -> CosmosVerdict:
    """The baseline's yes/no on one video's frames, in order. A track links
    a box to a box of the next frame with IoU >= ``track_iou`` (the best
    match); its length is the number of consecutive frames it spans."""
    width, height = frame_size
    frames = [boxes_of(det, i, width, height) for i, det in enumerate(detections)]
    longest = 0
    lengths: list[int] = []  # track length ending at each box of the previous frame
    for i, boxes in enumerate(frames):
        current = []
        for box in boxes:
            length = 1
            if i > 0:
                best = max(range(len(frames[i - 1])), key=lambda j: iou(box, frames[i - 1][j]), default=None)
                if best is not None and iou(box, frames[i - 1][best]) >= rule.track_iou:
                    length = lengths[best] + 1
            current.append(length)
            longest = max(longest, length)
        lengths = current
    corner = sum(any(in_corner(b, rule.corner_margin) for b in boxes) for boxes in frames)
    share = corner / len(frames) if frames else 0.0
    return CosmosVerdict(overlay=longest >= rule.min_track_frames or share > rule.min_corner_frame_share,
                         longest_track=longest, corner_frame_share=share)
