"""The kinds of text in the sample flow (docs/kinds.md): where the pure
rules of ``kinds.py`` meet a judged video.

Opt-in: the flow calls this only when the op sets a kind key, so a recipe
without one gets Data-Juicer's outputs byte for byte. Every executor runs
it at the same two points of the shared flow: ``kind_frames_of`` where a
video is decoded (the extra frames are decoded and judged by the fast
detector there, on the CPU of the decoding process), ``judge_kinds`` where
its stats are made.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from ..config import OcrFilter
from ..detect.area import Detections
from ..data.sources import is_url
from ..errors import ConfigError, ErrorKind, SystemicFailure, VideoError, store_failure
from ..judging import video_ratio
from ..kind_frames import KindFrames, detect_kind_frames
from ..kinds import KINDS, classify_video, transfer_kinds
from ..outcome import VideoStats
from ..video.frames import Limits, SampledVideo


@lru_cache(maxsize=1)
def _fast_detector():
    # one PP-OCR model per decoding process, on its CPU with one thread: the
    # decoders run one per core, and the GPU's replicas keep the GPU
    from ..detect.ppocr import PpOcrDetector

    return PpOcrDetector("cpu", threads=1)


def kind_frames_of(path: str, op: OcrFilter, limits: Limits, threads: int = 0) -> KindFrames:
    """The kind analysis's own ``op.kind_frames`` frames of a video, with the
    fast detector's boxes; a failure is this video's (``decode_error``)."""
    assert op.kind_frames is not None
    try:
        detector = _fast_detector()
    except ConfigError as exc:  # preflight checks the model: a model gone since stops the run, it is no sample's
        raise SystemicFailure(f"kind_frames needs PP-OCR, which cannot load: {exc}") from exc
    try:
        return detect_kind_frames(path, op.kind_frames, detector, color_conversion=op.color_conversion,
                                  limits=limits, threads=threads)
    except VideoError:
        raise
    except Exception as exc:
        if is_url(path):  # a read through the store that failed is the store's, as for the sampled frames
            raise store_failure(path, exc) from exc
        # the sampled frames decoded: the kind analysis's own detector failed on this video
        raise VideoError(ErrorKind.DETECTOR_ERROR, f"{path}: its kind_frames could not be judged ({exc!r}); run "
                         "without kind_frames to judge kinds on the sampled frames only", path,
                         cause=f"detector_error: kind_frames: {type(exc).__name__}") from exc


def judge_kinds(stats: VideoStats, results: Sequence[Detections], sampled: SampledVideo, op: OcrFilter) -> None:
    """Each box's kind and the video's per-kind ratios, into ``stats``; with
    ``count_kinds``, its ratio then counts only those kinds.

    Kind ratios are the deciding detector's own (CRAFT's under ``craft``, and
    under the cascade where CRAFT decided): a calibration maps a ratio of all
    text, not a ratio per kind (so ``count_kinds`` refuses a calibration)."""
    rules, mode = op.kind_rules, op.area_mode
    extra: KindFrames | None = sampled.kind_frames
    if extra is not None and extra.detections:
        reference = classify_video(extra.detections, extra.frame_size, extra.times, rules, mode)
        kinds = transfer_kinds(results, sampled.frame_size, sampled.times, reference, extra.detections,
                               rules=rules, area_mode=mode)
        stats.kind_frame_times = [round(t, 6) for t in extra.times]
    else:
        kinds = classify_video(results, sampled.frame_size, sampled.times, rules, mode)
    stats.kind_ratios = {k: video_ratio([f.ratios[k] for f in kinds.frames], op.aggregate) for k in KINDS}
    stats.main_kind = max(KINDS, key=lambda k: stats.kind_ratios[k]) if any(stats.kind_ratios.values()) else "none"
    stats.frame_kinds = [list(f.kinds) for f in kinds.frames]
    if op.count_kinds is not None:
        counted = [sum(f.ratios[k] for k in op.count_kinds) for f in kinds.frames]
        stats.all_text_ratio = stats.ratio
        stats.frame_ratios = counted
        stats.ratio = video_ratio(counted, op.aggregate)

