"""How a decoded frame becomes RGB: the one place that decides it.

Data-Juicer converts with ``np.asarray(frame.to_image())`` under the PyAV it
pins (13.1). That PyAV never tells swscale the stream's colour tags: it
converts every YUV frame with the BT.601 matrix, in the range the pixel
format implies (``yuvj*``: full, anything else: limited), whatever the
stream says. PyAV 17 and later hand the tags to swscale, so a BT.709 clip (or
a VP9 clip tagged full range, which stays ``yuv420p``) converts differently
there. ``dj``, the default, asks every PyAV for 13.1's conversion explicitly;
``tagged`` asks every PyAV for the conversion the tags describe. Both were
measured against PyAV 13.1 and 18.1 (bench/bench_color.py, bench/RESULTS.md).

High-bit-depth video is the exception no argument fixes: swscale's 10-bit
chroma upsampling itself changed between the FFmpeg builds (docs/semantics.md,
"10-bit video").
"""

from __future__ import annotations

from typing import Literal

import av
import numpy as np
from av.video.reformatter import Colorspace

ColorConversion = Literal["dj", "tagged"]
COLOR_CONVERSIONS: tuple[str, ...] = ("dj", "tagged")

# FFmpeg's AVColorSpace values (libavutil/pixfmt.h) -> swscale's matrix names,
# as PyAV's Colorspace enum spells them. Anything else (unspecified, RGB,
# YCgCo, reserved) gets swscale's default, BT.601.
_MATRIX_OF_TAG = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
# AVColorRange: 1 limited (MPEG), 2 full (JPEG); 0 unspecified
_RANGE_OF_TAG = {1: "MPEG", 2: "JPEG"}


def _is_yuv(frame: av.VideoFrame) -> bool:
    # Only YUV input has a matrix and a range to choose; RGB, palette and
    # gray frames are converted as PyAV converts them, untouched.
    name = frame.format.name
    return name.startswith(("yuv", "nv"))


def _has_matrix(name: str) -> bool:
    try:
        Colorspace[name]
    except KeyError:
        return False
    return True


def _implied_range(frame: av.VideoFrame) -> str:
    """The range swscale assumes when told nothing: full for ``yuvj*``."""
    return "JPEG" if frame.format.name.startswith("yuvj") else "MPEG"


def _colorspace_args(frame: av.VideoFrame, conversion: ColorConversion) -> dict:
    if not _is_yuv(frame):
        return {}
    if conversion == "dj":
        # PyAV 13.1's to_image(): BT.601, range from the pixel format, tags ignored
        return {"src_colorspace": "ITU601", "src_color_range": _implied_range(frame)}
    if conversion == "tagged":
        matrix = _MATRIX_OF_TAG.get(int(frame.colorspace), "ITU601")
        if not _has_matrix(matrix):
            # PyAV before 17 cannot ask swscale for BT.2020 at all (docs/semantics.md)
            matrix = "ITU601"
        color_range = _RANGE_OF_TAG.get(int(frame.color_range), _implied_range(frame))
        # PyAV before 17 skips swscale's colour set-up when source and
        # destination look alike (same colorspace number, same range), and
        # then converts a BT.709 frame as BT.601; a destination range other
        # than the source's always gets the set-up done. For RGB output that
        # range means nothing (measured: bench/bench_color.py).
        other = "MPEG" if color_range == "JPEG" else "JPEG"
        return {"src_colorspace": matrix, "src_color_range": color_range, "dst_color_range": other}
    raise ValueError(f"unknown color_conversion {conversion!r}; use one of {', '.join(COLOR_CONVERSIONS)}")


def to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None,
           conversion: ColorConversion = "dj") -> np.ndarray:
    """The frame as RGB uint8 (H x W x 3). ``size`` (width, height) other
    than the frame's scales it with swscale's area filter, which shrinks
    without aliasing thin strokes away. ``conversion``: ``dj`` (Data-Juicer's
    pinned conversion, the default) or ``tagged`` (the stream's own colour
    matrix and range)."""
    kwargs = _colorspace_args(frame, conversion)
    if size is not None and (frame.width, frame.height) != tuple(size):
        kwargs.update(width=size[0], height=size[1], interpolation="AREA")
    return frame.to_ndarray(format="rgb24", **kwargs)
