"""More frames for the kind analysis only (``kind_frames: N``, issue 26).

Three frames are little to judge persistence from: a watermark and a static
shot look alike, and one subtitle line held for three frames looks like a
logo. So the kind analysis may look at N evenly spaced frames of its own,
judged by the fast detector. These frames are decoded separately from the
Data-Juicer frames and never reach the Data-Juicer ratio: the ratio still
comes from ``sample_video(path, frame_sample_num)``; only each box's kind and
the per-kind ratios are judged here.

The frames are ``sample_video``'s uniform frames for ``n = N`` (Data-Juicer's
own spacing rule, so the frames are reproducible from the saved times with
``frames_at``), scaled to one long side (down or up): the fast detector's
cost grows with the frame's area, it misses small text on small frames, and
the kind rules work in shares of the frame, not pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .detect.area import Detections
from .video.color import ColorConversion
from .video.frames import Limits, sample_video

Detector = Callable[[Sequence[np.ndarray]], list[Detections]]

# Long side the kind frames are scaled to before detection, down or up.
# Measured on the real clips (bench/RESULTS.md, "Kinds of text"): at native
# 1440x1280 PP-OCR missed a small watermark that it found at 960; a 352x288
# clip's logo was found only once scaled up 2x. Cosmos-Curate uses 640.
DEFAULT_KIND_SIDE = 960


@dataclass(frozen=True)
class KindFrames:
    """The kind analysis's own frames of one video, with the fast detector's
    boxes in the pixels of ``frame_size`` (the scaled frames)."""

    path: str
    frame_size: tuple[int, int]  # (width, height) the boxes refer to
    times: list[float]  # presentation time of each frame, seconds
    detections: list[Detections]  # one per frame, in time order
    decoded: int  # frames decoded to get them
    decode_s: float
    detect_s: float


def detect_kind_frames(path: str, n: int, detector: Detector, side: int | None = DEFAULT_KIND_SIDE,
                       color_conversion: ColorConversion = "dj", limits: Limits = Limits(),
                       threads: int = 0) -> KindFrames:
    """Decode ``n`` evenly spaced frames of ``path`` (fewer when the video
    holds fewer), scaled so that their long side is ``side`` (None: native),
    and run ``detector`` on them. ``detector`` is any callable
    from RGB frames to one :class:`Detections` per frame, e.g.
    ``PpOcrDetector()``; it is passed in so that one model serves many
    videos. Raises :class:`textsieve.errors.VideoError` as ``sample_video``
    does when the video cannot be read."""
    if n < 1:
        raise ValueError(f"kind_frames must be >= 1, got {n}")
    start = time.perf_counter()
    video = sample_video(path, n=n, method="uniform", limits=limits, threads=threads, max_side=side,
                         color_conversion=color_conversion)
    images, size = video.images, video.frame_size
    if side is not None and max(size) < side:
        images, size = upscaled(images, side)
    decoded_at = time.perf_counter()
    detections = detector(images) if images else []
    if len(detections) != len(images):
        raise RuntimeError(f"{path}: the detector returned {len(detections)} results for "
                           f"{len(images)} frames; it must return one per frame")
    return KindFrames(path=path, frame_size=size, times=list(video.times), detections=list(detections),
                      decoded=video.decoded, decode_s=decoded_at - start, detect_s=time.perf_counter() - decoded_at)


def upscaled(images: Sequence[np.ndarray], side: int) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Frames scaled up (bicubic) so that their long side is ``side``: small
    text in small videos (a logo of a CIF clip) is below the fast detector's
    smallest line at native size."""
    height, width = images[0].shape[:2]
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return [np.asarray(Image.fromarray(im).resize(size, Image.Resampling.BICUBIC)) for im in images], size
