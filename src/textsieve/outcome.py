"""What happened to one input sample: kept, dropped or error. Every input
sample gets exactly one outcome; the summary counts them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .redact import mask_url, redact_text

Status = Literal["kept", "dropped", "error"]


@dataclass
class VideoStats:
    path: str
    ratio: float
    frame_times: list[float]
    frame_ratios: list[float]
    width: int
    height: int
    duration_s: float
    decoded_frames: int
    raw_frame_ratios: list[float] | None = None  # the detector's own, when a calibration mapped them
    outside_calibration: bool = False  # a raw ratio lay past the range the calibration was fitted on
    # under detector: cascade
    decided_by: str | None = None  # the detector whose ratios these are
    fast_ratio: float | None = None  # the fast detector's mapped ratio, when CRAFT re-judged
    routed: str | None = None  # why CRAFT re-judged
    frame_boxes: list[list[list[int]]] | None = None  # per frame, its boxes as polygons (save_boxes)
    # with segment_s: the pieces ({start, end, ratio, keep}), the video's verdict
    # from them (segment_aggregate any/all; None: its ratio decides), and where a
    # truncated video stopped being judged
    pieces: list[dict] | None = None
    keep: bool | None = None
    judged_until: float | None = None
    # with the kinds of text (docs/kinds.md): per kind the video's statistic of
    # its frames' kind ratios, the largest kind, each box's kind per frame (in
    # frame_boxes' order), the extra frames judged for it (kind_frames), and,
    # with count_kinds, the ratio of all text (Data-Juicer's)
    kind_ratios: dict[str, float] | None = None
    main_kind: str | None = None
    frame_kinds: list[list[str]] | None = None
    kind_frame_times: list[float] | None = None
    all_text_ratio: float | None = None

    def to_json(self) -> dict:
        extra: dict = {}
        if self.raw_frame_ratios is not None:
            extra["raw_frame_ratios"] = self.raw_frame_ratios
        if self.outside_calibration:
            extra["outside_calibration"] = True
        if self.decided_by is not None:
            extra["decided_by"] = self.decided_by
        if self.routed is not None:
            extra.update(fast_ratio=self.fast_ratio, routed=self.routed)
        if self.frame_boxes is not None:
            extra["frame_boxes"] = self.frame_boxes
        if self.pieces is not None:
            extra["pieces"] = self.pieces
            if self.keep is not None:
                extra["keep"] = self.keep
            if self.judged_until is not None:
                extra["judged_until"] = self.judged_until
        if self.kind_ratios is not None:
            extra.update(kind_ratios=self.kind_ratios, main_kind=self.main_kind, frame_kinds=self.frame_kinds)
            if self.kind_frame_times is not None:
                extra["kind_frame_times"] = self.kind_frame_times
            if self.all_text_ratio is not None:
                extra["all_text_ratio"] = self.all_text_ratio
        return {
            "video": mask_url(self.path),
            "ratio": self.ratio,
            "frame_times": self.frame_times,
            "frame_ratios": self.frame_ratios,
            **extra,
            "width": self.width,
            "height": self.height,
            "duration_s": self.duration_s,
        }


@dataclass
class SampleOutcome:
    index: int
    sample: Any
    status: Status
    ratios: list[float] = field(default_factory=list)  # per video, in the sample's order
    videos: list[VideoStats] = field(default_factory=list)  # distinct videos
    error: dict | None = None  # {"kind", "video", "message"}
    entries: list[int] = field(default_factory=list)  # per entry of the sample's video list, its place in ``videos``
    # for a detection-stage failure, what it says without this sample's paths;
    # not written out: the collector watches it for a failure that repeats
    cause: str | None = None

    def stats_record(self) -> dict:
        record = {
            "index": self.index,
            "status": self.status,
            "video_ocr_area_ratio": self.ratios,
            "videos": [v.to_json() for v in self.videos],
        }
        if any(v.pieces is not None or v.kind_ratios is not None for v in self.videos):
            # which video each ratio is, so that `textsieve decide` can re-decide pieces and kinds
            record["entry_videos"] = self.entries
        return record

    def error_record(self) -> dict:
        error = {key: redact_text(value) if isinstance(value, str) else value for key, value in (self.error or {}).items()}
        return {"index": self.index, **error, "sample": self.sample}
