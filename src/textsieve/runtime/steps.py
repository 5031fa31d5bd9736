"""The stages every executor runs, as plain functions: decode a video's
sampled frames (CPU), turn detections into per-video stats, and judge a
sample. Executors differ only in where and how often they call these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..calibration import Calibration, load_calibration
from ..config import OcrFilter, RunConfig
from ..data.dataset import Row, video_paths
from ..detect.area import Detections, frame_text_ratio
from ..errors import ErrorKind, VideoError
from ..filter import keep_sample, video_ratio
from ..outcome import SampleOutcome, VideoStats
from ..video.frames import Limits, SampledVideo, sample_video

Detect = Callable[[Sequence[np.ndarray]], list[Detections]]


def limits_of(config: RunConfig) -> Limits:
    return Limits(max_pixels=config.max_video_pixels, max_duration_s=config.max_video_duration_s)


def decode(path: str, op: OcrFilter, limits: Limits, threads: int = 0) -> SampledVideo:
    """Sample one video; any failure is a VideoError for that video only."""
    try:
        return sample_video(path, op.frame_sample_num, op.sampling, op.interval_s, limits, threads, op.max_side)
    except VideoError:
        raise
    except Exception as exc:  # a decoder bug on one file must not end the run
        raise VideoError(ErrorKind.DECODE_ERROR, f"{path}: unexpected decoding error {exc!r}", path) from exc


def video_stats(sampled: SampledVideo, detections: Sequence[Detections | dict], op: OcrFilter,
                calibration: Calibration | None = None) -> VideoStats:
    """Stats of a video from its frames' detections; a frame that got an
    error record instead (``gpu_oom``, ``detector_error``) fails the video.
    ``calibration``: the op's, already loaded (where its file is not at hand)."""
    info = sampled.info
    bad = next((d for d in detections if not isinstance(d, Detections)), None)
    if bad is not None:
        raise VideoError(ErrorKind(bad["kind"]), f"{info.path}: {bad['message']}", info.path)
    width, height = sampled.frame_size
    ratios = [frame_text_ratio(d, width, height, op.area_mode) for d in detections]
    raw = None
    if op.calibration is not None:
        raw, ratios = ratios, (calibration or load_calibration(op.calibration))(ratios)
    return VideoStats(
        path=info.path,
        ratio=video_ratio(ratios, op.aggregate),
        frame_times=sampled.times,
        frame_ratios=ratios,
        raw_frame_ratios=raw,
        width=info.width,
        height=info.height,
        duration_s=float(info.duration),
        decoded_frames=sampled.decoded,
    )


@dataclass
class SampleJob:
    """A sample's distinct videos, ready to be decoded."""

    row: Row
    paths: list[str]  # in the sample's order, duplicates included
    unique: list[str]


def prepare(row: Row, op: OcrFilter, base_dir: str) -> SampleJob | SampleOutcome:
    """Validate the row; an unusable one becomes an error outcome right away."""
    if row.error is not None:
        return error_outcome(row, VideoError(ErrorKind.BAD_SAMPLE, row.error))
    try:
        paths = video_paths(row.sample, op.video_key, base_dir)
    except VideoError as exc:
        return error_outcome(row, exc)
    return SampleJob(row=row, paths=paths, unique=list(dict.fromkeys(paths)))


def judge(job: SampleJob, stats: dict[str, VideoStats], op: OcrFilter) -> SampleOutcome:
    """Decide a sample whose videos all have stats."""
    ratios = [stats[p].ratio for p in job.paths]
    keep = keep_sample(ratios, op.min_area_ratio, op.max_area_ratio, op.any_or_all)
    return SampleOutcome(
        index=job.row.index,
        sample=job.row.sample,
        status="kept" if keep else "dropped",
        ratios=ratios,
        videos=[stats[p] for p in job.unique],
    )


def error_outcome(row: Row, exc: VideoError) -> SampleOutcome:
    return SampleOutcome(index=row.index, sample=row.sample, status="error", error=exc.record())
