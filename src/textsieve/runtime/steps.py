"""The stages every executor runs, as plain functions: validate a row,
decode a video's sampled frames (CPU), and judge a sample. The flow that
joins them is :mod:`textsieve.runtime.flow`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import OcrFilter, RunConfig
from ..data.dataset import Row, video_paths, with_absolute_videos
from ..data.sources import is_url
from ..errors import ErrorKind, Failure, VideoError, store_failure
from ..judging import STATS_FIELD, keep_with_verdicts, kinds_within
from ..outcome import SampleOutcome, VideoStats
from ..video.frames import Limits, SampledVideo, probe_video, sample_video
from ..video.pieces import Piece


def limits_of(config: RunConfig) -> Limits:
    return Limits(max_pixels=config.video_pixel_limit, max_duration_s=config.max_video_duration_s)


def decode(path: str, op: OcrFilter, limits: Limits, threads: int = 0, piece: Piece | None = None) -> SampledVideo:
    """Sample one video (or one piece of it); any failure is a VideoError
    for that video only."""
    try:
        return sample_video(path, op.frame_sample_num, op.sampling, op.interval_s, limits, threads, op.max_side, piece,
                            op.color_conversion)
    except VideoError:
        raise
    except Exception as exc:  # a decoder bug on one file must not end the run
        if is_url(path):  # FFmpeg reads through the store: a read that failed there is the store's
            raise store_failure(path, exc) from exc
        raise VideoError(ErrorKind.DECODE_ERROR, f"{path}: unexpected decoding error {exc!r}", path) from exc


def probe_only(path: str, limits: Limits) -> SampledVideo:
    """A video's facts (its duration above all), nothing decoded: how a long
    video is cut in pieces before its pieces are decoded."""
    try:
        info = probe_video(path, limits)
    except VideoError:
        raise
    except Exception as exc:
        if is_url(path):
            raise store_failure(path, exc) from exc
        raise VideoError(ErrorKind.DECODE_ERROR, f"{path}: unexpected error reading it {exc!r}", path) from exc
    return SampledVideo(info, [], [], 0, (info.width, info.height))


@dataclass
class SampleJob:
    """A sample's distinct videos, ready to be decoded."""

    row: Row
    paths: list[str]  # in the sample's order, duplicates included
    unique: list[str]


def prepare(row: Row, op: OcrFilter, base_dir: str) -> SampleJob | SampleOutcome:
    """Validate the row; an unusable one becomes an error outcome right away."""
    if row.error is not None:
        return error_outcome(row, Failure(ErrorKind.BAD_SAMPLE, row.error))
    stats = row.sample.get(STATS_FIELD)
    if stats is not None and not isinstance(stats, dict):
        # the stats are added to it (with_stats): anything but an object would
        # fail the write, or change its type unannounced
        return error_outcome(row, Failure(ErrorKind.BAD_SAMPLE, f"field {STATS_FIELD!r} holds a value "
                                          f"of type {type(stats).__name__}; it is Data-Juicer's stats and must be an object "
                                          "or null: rename the field"))
    try:
        paths = video_paths(row.sample, op.video_key, base_dir)
    except VideoError as exc:
        return error_outcome(row, exc.failure)
    # from here on the sample is the one the outputs write: its paths resolve from any folder
    row = replace(row, sample=with_absolute_videos(row.sample, op.video_key, base_dir))
    return SampleJob(row=row, paths=paths, unique=list(dict.fromkeys(paths)))


def judge(job: SampleJob, stats: dict[str, VideoStats], op: OcrFilter) -> SampleOutcome:
    """Decide a sample whose videos all have stats."""
    ratios = [stats[p].ratio for p in job.paths]
    limits = op.kind_limits
    # a video past a kind's maximum fails whatever its ratio; else its pieces' verdict, or its ratio
    verdicts = [stats[p].keep if kinds_within(stats[p].kind_ratios, limits) else False for p in job.paths]
    keep = keep_with_verdicts(ratios, verdicts, op.min_area_ratio, op.max_area_ratio, op.any_or_all,
                              op.reversed_range)
    return SampleOutcome(
        index=job.row.index,
        sample=job.row.sample,
        status="kept" if keep else "dropped",
        ratios=ratios,
        videos=[stats[p] for p in job.unique],
        entries=[job.unique.index(p) for p in job.paths],
    )


def error_outcome(row: Row, failure: Failure) -> SampleOutcome:
    return SampleOutcome(index=row.index, sample=row.sample, status="error", error=failure.record(), cause=failure.cause)
