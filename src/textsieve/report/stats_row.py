"""A row of ``stats.jsonl`` (and of the stats shards): one judged sample.

The rows are written by ``SampleOutcome.stats_record`` (outcome.py); these
classes describe them for readers and generate the published JSON Schema
(``docs/schemas/stats.schema.json``, see ``docs/schemas/README.md``). A
test checks real runs' rows against it. Error samples have no stats row:
they are in ``errors.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..kind_rules import Kind, MainKind
from .typed import DOCUMENTED, parse, to_json, when_set


@dataclass(frozen=True, slots=True)
class PieceRow:
    """With ``segment_s``: one piece of a video and its verdict."""

    __pydantic_config__ = DOCUMENTED
    start: float
    """Seconds, inclusive."""
    end: float
    """Seconds, exclusive (the video's end for the last piece)."""
    ratio: float
    keep: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoRow:
    """One distinct video of the sample (a path listed twice is judged once)."""

    __pydantic_config__ = DOCUMENTED
    video: str
    """The path as the dataset gave it (URLs with their secrets masked)."""
    ratio: float
    """The video's text area ratio: the aggregate of its frame ratios (mean by default)."""
    frame_times: list[float]
    """Seconds of the sampled frames."""
    frame_ratios: list[float]
    """Each sampled frame's ratio, on the scale the thresholds apply to."""
    raw_frame_ratios: list[float] | None = when_set()
    """The detector's own ratios, when a calibration mapped them."""
    outside_calibration: bool | None = when_set()
    """Present (true) when a raw ratio lay past the range the calibration was fitted on."""
    decided_by: str | None = when_set()
    """Under the cascade: the detector whose ratios these are."""
    fast_ratio: float | None = when_set()
    """Under the cascade, when CRAFT re-judged: the fast detector's mapped ratio."""
    routed: str | None = when_set()
    """Under the cascade: why CRAFT re-judged the video."""
    frame_boxes: list[list[list[int]]] | None = when_set()
    """With save_boxes: per frame, its boxes as polygons (x0, y0, x1, y1, ...)."""
    pieces: list[PieceRow] | None = when_set()
    keep: bool | None = when_set()
    """With segment_s and segment_aggregate any/all: the video's verdict from its pieces."""
    judged_until: float | None = when_set()
    """With segment_s: where a video cut short stopped being judged, in seconds."""
    kind_ratios: dict[Kind, float] | None = when_set()
    """With a kind key (docs/kinds.md): per kind of text, the video's statistic of its frames' ratios of that
    kind (the detector's own scale)."""
    main_kind: MainKind | None = when_set()
    """With a kind key: the kind with the largest ratio, or none."""
    frame_kinds: list[list[Kind]] | None = when_set()
    """With a kind key: per sampled frame, each box's kind, in frame_boxes' order."""
    kind_frame_times: list[float] | None = when_set()
    """With kind_frames: seconds of the extra frames the kinds were judged on."""
    all_text_ratio: float | None = when_set()
    """With count_kinds: the ratio of all text, as Data-Juicer counts it."""
    width: int
    height: int
    duration_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsRow:
    """One judged sample."""

    __pydantic_config__ = DOCUMENTED
    index: int
    """The sample's place in the dataset, from 0."""
    status: Literal["kept", "dropped"]
    video_ocr_area_ratio: list[float]
    """Per entry of the sample's videos list, in its order (Data-Juicer's statistic)."""
    videos: list[VideoRow]
    entry_videos: list[int] | None = when_set()
    """With segment_s or a kind key: per entry of the videos list, its place in ``videos``."""

    @classmethod
    def from_json(cls, data: object) -> "StatsRow":
        """A row from its parsed JSON; ValueError naming the wrong field."""
        return parse(cls, data)

    def to_json(self) -> dict:
        return to_json(self)
