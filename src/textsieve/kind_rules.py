"""The kinds of text and their rules' parameters: settings only (pydantic,
no numpy), so that the run's configuration can hold them; the rules
themselves are in ``kinds.py`` (docs/kinds.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["overlay", "subtitle", "screen", "scene"]
KINDS: tuple[Kind, ...] = ("overlay", "subtitle", "screen", "scene")
MainKind = Literal["overlay", "subtitle", "screen", "scene", "none"]


class KindRules(BaseModel):
    """The rules' parameters; every share is of the frame's width, height or
    area. Defaults were chosen on 18 real clips (bench/eval_kinds.py,
    bench/RESULTS.md, "Kinds of text"), with a leave-one-out check."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    persist_iou: float = Field(0.7, gt=0, le=1, description=(
        "IoU at which two boxes of different frames are 'the same place'"))
    overlay_min_persistence: float = Field(0.25, ge=0, le=1, description=(
        "share of the other sampled frames holding a box at the same place, for an overlay; detectors miss "
        "small watermarks on some frames, so 'nearly every frame' needs slack"))
    edge_margin: float = Field(0.08, ge=0, le=0.5, description=(
        "an overlay has a side within this share of the frame's edge; the rest is the interior (0.08: the "
        "grid's choice on the real clips, in 17 of 18 leave-one-out folds; 0.12 called sponsor boards overlays)"))
    subtitle_centre_tolerance: float = Field(0.04, ge=0, le=0.5, description=(
        "a subtitle line's centre is within this share of the width from the frame's centre"))
    subtitle_bottom_band: float = Field(0.45, ge=0, le=1, description=(
        "a subtitle line starts in the lowest share of the height (vertical phone videos place them at ~0.7)"))
    subtitle_top_band: float = Field(0.2, ge=0, le=1, description="or ends in the top share of the height")
    subtitle_min_edge_gap: float = Field(0.015, ge=0, le=0.5, description=(
        "subtitles sit inside the safe area: a line touching the frame's edge is a watermark, not a subtitle"))
    subtitle_max_line_height: float = Field(0.15, gt=0, le=1, description="a subtitle line's height, at most")
    subtitle_min_aspect: float = Field(1.5, ge=0, description="width over height of a subtitle line, at least")
    subtitle_band_iou: float = Field(0.5, gt=0, le=1, description=(
        "the band stays: another frame holds a subtitle-shaped line whose rows overlap this one's by this IoU "
        "(a number plate crossing the bottom centre once is not a subtitle)"))
    screen_min_lines: int = Field(2, ge=1, description="interior boxes in a frame that make it a screen frame")
    screen_min_share: float = Field(0.03, ge=0, le=1, description=(
        "and the share of the frame those interior boxes cover"))
    screen_title_height: float = Field(0.1, gt=0, le=1, description=(
        "or one interior line at least this tall that holds still (a title card)"))
