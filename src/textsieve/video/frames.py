"""Decoding the sampled frames of one video with PyAV, by seeking.

Only the frames between a target's keyframe and the target are decoded, and
only the chosen frames are kept, so memory per video is bounded by a few
frames whatever the video's length. The frames are those Data-Juicer's
full-keyframe-pass algorithm picks (see :mod:`textsieve.video.sampling`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, Sequence

import av
import numpy as np

from ..data.sources import filesystem, is_url
from ..errors import ErrorKind, VideoError, store_failure
from .color import ColorConversion, to_rgb
from .pieces import Piece, piece_targets
from .sampling import TargetMatcher, effective_frame_count, interval_targets, uniform_targets

SamplingMethod = Literal["uniform", "interval", "keyframe"]
# bytes per ranged read of a remote video: a seek fetches the blocks it lands in, not the file
REMOTE_BLOCK = 1 << 20
# skip non-reference frames while walking to a far target (tests and benchmarks switch it off to compare)
SKIP_NON_REFERENCE = True


@dataclass(frozen=True)
class Limits:
    """Inputs past these are refused before decoding (``bad_resolution`` /
    ``too_long``): a corrupt header claiming 100k x 100k pixels must not
    allocate gigabytes."""

    max_pixels: int = 8192 * 8192
    max_duration_s: float = 24 * 3600.0


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    duration: Fraction  # seconds
    frames: int | None  # as the container states it; None when unknown
    time_base: Fraction
    codec: str


@dataclass
class SampledVideo:
    info: VideoInfo
    images: list[np.ndarray]  # RGB uint8, H x W x 3, one per chosen frame
    times: list[float]  # presentation time of each chosen frame, seconds
    decoded: int  # frames decoded to get them: the decode cost
    frame_size: tuple[int, int]  # (width, height) of ``images``: native, or scaled to max_side
    # kind_frames: the kind analysis's own frames and their fast detections
    # (kind_frames.KindFrames), decoded with this video; never in its ratio
    kind_frames: Any = None


def open_video(path: str) -> av.container.InputContainer:
    """Open ``path`` (a file, or an fsspec URL: ``s3://``, ``gs://``,
    ``http(s)://``, read with ranged requests so that seeking fetches only
    what is decoded) or raise a :class:`VideoError` saying what is wrong."""
    if is_url(path):
        return _open_remote(path)
    if not os.path.exists(path):
        raise VideoError(ErrorKind.MISSING_FILE, f"{path}: no such file", path)
    if os.path.isdir(path):
        raise VideoError(ErrorKind.UNREADABLE, f"{path}: is a folder, not a video file", path)
    if os.path.getsize(path) == 0:
        raise VideoError(ErrorKind.EMPTY_FILE, f"{path}: file is empty (0 bytes)", path)
    try:
        return av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise VideoError(
            ErrorKind.UNREADABLE,
            f"{path}: FFmpeg cannot read it as a video ({exc}); it may not be a video, "
            "or be cut before its index (a truncated MP4 whose moov atom is at the end)",
            path,
        ) from exc


def _open_remote(path: str) -> av.container.InputContainer:
    # Credentials come from the usual environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS,
    # ~/.aws): fsspec's backends read them; nothing here logs them.
    try:
        fs, inner = filesystem(path)
        if not fs.exists(inner):
            raise VideoError(ErrorKind.MISSING_FILE, f"{path}: no such file", path)
        size = fs.size(inner)
        if size == 0:
            raise VideoError(ErrorKind.EMPTY_FILE, f"{path}: object is empty (0 bytes)", path)
        handle = fs.open(inner, "rb", block_size=REMOTE_BLOCK)
        if size is not None and size > REMOTE_BLOCK and _http(fs) and not _serves_ranges(handle, size):
            handle.close()
            handle = _whole(fs, inner)
    except VideoError:
        raise
    except Exception as exc:  # a store that failed to answer: worth a retry (--retry-errors)
        raise store_failure(path, exc) from exc
    try:
        # mode given: PyAV takes a file object's own mode, and a spool's is "w+b"
        return av.open(handle, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, OSError) as exc:
        handle.close()
        raise VideoError(ErrorKind.UNREADABLE, f"{path}: FFmpeg cannot read it as a video ({exc})", path) from exc


def _http(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return any(p in ("http", "https") for p in protocol)


def _serves_ranges(handle, size: int) -> bool:
    """Whether an HTTP server answers a range request past the first block.
    A server that does not (Python's http.server, some CDNs' origins) sends the
    whole file, which fsspec refuses for any read but the first: without this
    check every video larger than a block would fail as ``remote_read``."""
    try:
        handle.seek(size - 1)
        handle.read(1)
    except ValueError as exc:
        if "range" not in str(exc).lower():
            raise
        return False
    handle.seek(0)
    return True


def _whole(fs, inner: str):
    """The object fetched once from the start (a streaming read), held in
    memory up to 64 MiB and in a temporary file past that: seeking then costs
    nothing more. The price of a server without range requests is one full
    download per video (README, "Datasets and storage")."""
    spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
    with fs.open(inner, "rb", block_size=0) as stream:
        shutil.copyfileobj(stream, spool, REMOTE_BLOCK)
    spool.seek(0)
    return spool


def probe(container: av.container.InputContainer, path: str, limits: Limits) -> VideoInfo:
    """Stream facts needed for sampling, checked against ``limits``."""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoError(ErrorKind.NO_VIDEO_STREAM, f"{path}: no video stream (streams: {', '.join(kinds)})", path)
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0 or width * height > limits.max_pixels:
        raise VideoError(
            ErrorKind.BAD_RESOLUTION,
            f"{path}: frame size {width}x{height} is outside 1..{limits.max_pixels} pixels "
            "(if it is real, plan for it with --plan-frame-size WxH, or raise max_video_pixels: "
            "recipe key or --max-video-pixels)",
            path,
        )
    if stream.time_base is None:
        raise VideoError(ErrorKind.BAD_TIMESTAMPS, f"{path}: video stream has no time base", path)
    duration = _duration(container, stream, path)
    if duration > limits.max_duration_s:
        raise VideoError(
            ErrorKind.TOO_LONG,
            f"{path}: duration {float(duration):.0f} s exceeds {limits.max_duration_s:.0f} s "
            "(raise limits.max_duration_s if it is real)",
            path,
        )
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        duration=duration,
        frames=stream.frames or None,
        time_base=Fraction(stream.time_base),
        codec=stream.codec_context.name,
    )


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: str) -> Fraction:
    # Data-Juicer reads stream.duration only (and fails where it is absent, as
    # in Matroska/WebM); the fallbacks keep those files usable.
    if stream.duration is not None and stream.duration > 0:
        return stream.duration * Fraction(stream.time_base)
    if container.duration is not None and container.duration > 0:
        return Fraction(container.duration, av.time_base)
    last = None
    for packet in container.demux(stream):
        if packet.pts is not None:
            last = packet.pts if last is None else max(last, packet.pts)
    if last is None:
        raise VideoError(
            ErrorKind.BAD_TIMESTAMPS,
            f"{path}: no duration and no packet timestamps (a raw elementary stream?); remux it into MP4/MKV",
            path,
        )
    container.seek(0)
    return last * Fraction(stream.time_base)


def sample_targets(info: VideoInfo, n: int, method: SamplingMethod, interval_s: float) -> list[Fraction]:
    if method == "interval":
        return interval_targets(info.duration, Fraction(interval_s).limit_denominator(1000), n)
    return uniform_targets(info.duration, effective_frame_count(n, info.frames))


def sample_video(
    path: str,
    n: int = 3,
    method: SamplingMethod = "uniform",
    interval_s: float = 1.0,
    limits: Limits = Limits(),
    threads: int = 0,
    max_side: int | None = None,
    piece: Piece | None = None,
    color_conversion: ColorConversion = "dj",
) -> SampledVideo:
    """Open, check and sample one video; always closes the container.
    ``threads``: FFmpeg decoding threads (0: FFmpeg's choice, all cores).
    ``max_side``: frames are scaled (area-averaged) so that their long side
    is at most this; None keeps them native. ``piece``: sample only that
    piece of the video, by the same rule inside it (video/pieces.py).
    ``color_conversion``: how YUV becomes RGB (video/color.py): ``dj``,
    Data-Juicer's pinned conversion, or ``tagged``, the stream's own tags."""
    container = open_video(path)
    try:
        info = probe(container, path, limits)
        if piece is None:
            targets = sample_targets(info, n, method, interval_s)
        else:
            targets = piece_targets(piece, n, method, Fraction(interval_s).limit_denominator(1000))
        stream = container.streams.video[0]
        if threads:
            stream.codec_context.thread_count = threads
        counter = _Counter(container, stream)
        if method == "keyframe":
            picked = _keyframes_at(counter, stream, targets, path)
        else:
            picked = _exact_frames(counter, stream, targets, info.duration, path)
        if not picked:
            raise VideoError(ErrorKind.DECODE_ERROR, f"{path}: no frame could be decoded", path)
        size = scaled_size(info.width, info.height, max_side)
        return SampledVideo(
            info=info,
            images=[to_rgb(frame, size, color_conversion) for _, frame in picked],
            times=[float(t) for t, _ in picked],
            decoded=counter.decoded,
            frame_size=size,
        )
    except av.error.FFmpegError as exc:
        raise VideoError(
            ErrorKind.DECODE_ERROR,
            f"{path}: decoding failed ({exc}); the file is probably truncated or corrupt",
            path,
        ) from exc
    finally:
        container.close()


class _Counter:
    """The container's seek/decode, counting decoded frames."""

    def __init__(self, container: av.container.InputContainer, stream):
        self.container, self.decoded = container, 0
        self.seek = container.seek

    def decode(self, stream):
        for frame in self.container.decode(stream):
            self.decoded += 1
            yield frame


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Frame size with the long side at most ``max_side``, aspect kept."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _frame_time(frame: av.VideoFrame, time_base: Fraction, path: str) -> Fraction:
    if frame.pts is None:
        raise VideoError(ErrorKind.BAD_TIMESTAMPS, f"{path}: decoded frame has no timestamp", path)
    return frame.pts * time_base


def probe_video(path: str, limits: Limits = Limits()) -> VideoInfo:
    """A video's facts, checked against ``limits``; nothing decoded."""
    container = open_video(path)
    try:
        return probe(container, path, limits)
    except av.error.FFmpegError as exc:
        raise VideoError(ErrorKind.DECODE_ERROR, f"{path}: cannot read its header ({exc})", path) from exc
    finally:
        container.close()


def _check_not_truncated(duration: Fraction, last_time: Fraction, path: str) -> None:
    # A clean early end of stream: the file lost its tail but kept its index.
    if duration - last_time > max(Fraction(1), duration / 5):
        raise VideoError(
            ErrorKind.TRUNCATED,
            f"{path}: frames end at {float(last_time):.2f} s of a declared {float(duration):.2f} s; "
            "the file is probably truncated",
            path,
        )


class _ForwardWalk:
    """Decode forward from the keyframe before each target, skipping long
    gaps by seeking; the result equals a full decode fed to TargetMatcher.

    One ``walk`` is one continuous decode (from the start or from a seek); it
    says where to seek next, or that the stream ended or every target is met.
    """

    def __init__(self, container, stream, targets: list[Fraction], path: str):
        self.container, self.stream, self.path = container, stream, path
        self.time_base = Fraction(stream.time_base)
        self.matcher = TargetMatcher(targets)
        rate = stream.average_rate or stream.guessed_rate or 25
        # H.264 reorders at most 16 frames; frame threads add one frame of lag each
        self.skip_window = max(Fraction(1, 2),
                               Fraction(16 + 2 + (stream.codec_context.thread_count or 1)) / Fraction(rate))
        self.last: tuple[Fraction, av.VideoFrame] | None = None
        self.seen_until: int | None = None  # frames at or before this pts were already offered
        self.gop = Fraction(1)  # longest keyframe interval seen, seconds: below it, decoding on beats seeking
        self.may_seek = True

    def run(self, duration: Fraction) -> list[tuple[Fraction, av.VideoFrame]]:
        first = self.matcher.pending
        seek_at: Fraction | None = first if first > self.gop else None
        while True:
            if seek_at is not None:
                self.container.seek(int(seek_at / self.time_base), stream=self.stream, backward=True,
                                    any_frame=False)
            outcome = self._walk(seek_at)
            if outcome == "done":
                return self.matcher.picked()
            if outcome == "restart":
                self.container.seek(0)
                seek_at = None
            elif outcome is None:  # end of stream
                break
            else:
                seek_at = outcome
            self.seen_until = self.last[1].pts if self.last else None
        if self.last is not None:
            _check_not_truncated(duration, self.last[0], self.path)
            self.matcher.finish(self.last)
        return self.matcher.picked()

    def _walk(self, seek_at: Fraction | None) -> Fraction | Literal["done", "restart"] | None:
        """One continuous decode: the next seek target, "done", "restart" or None at end of stream."""
        landed = seek_at is None
        key_time: Fraction | None = None  # keyframe spacing is only measured along a continuous decode
        for frame in self.container.decode(self.stream):
            time = _frame_time(frame, self.time_base, self.path)
            if not landed:
                landed = True
                if time > seek_at and (self.seen_until is None or frame.pts > self.seen_until):
                    # The demuxer overshot the keyframe before the target:
                    # decode again from the start, without seeking.
                    self.may_seek = False
                    return "restart"
            if self.seen_until is not None and frame.pts <= self.seen_until:
                continue
            if frame.key_frame:
                if key_time is not None:
                    self.gop = max(self.gop, time - key_time)
                key_time = time
            self.last = (time, frame)
            self.matcher.offer(time, bool(frame.key_frame), self.last)
            if self.matcher.done:
                return "done"
            target = self.matcher.pending
            # Far from the target, frames nothing refers to (B-frames) cannot be
            # picked: let the decoder skip them (2x cheaper walks through long
            # GOPs, bench/RESULTS.md). Near it, decode everything: the window
            # covers the decoder's reordering and threading lag. The last
            # frame shown is always a reference frame, so end-of-stream
            # fallbacks are unaffected.
            if SKIP_NON_REFERENCE:
                self.stream.codec_context.skip_frame = "NONREF" if target - time > self.skip_window else "DEFAULT"
            if self.may_seek and target - time > self.gop and (seek_at is None or target > seek_at):
                # (a second seek for the same target would land on the same keyframe)
                return target
        return None


def _exact_frames(
    container, stream, targets: list[Fraction], duration: Fraction, path: str
) -> list[tuple[Fraction, av.VideoFrame]]:
    """Data-Juicer's frames at ``targets``, decoding as little as it can (``_ForwardWalk``)."""
    if not targets:
        return []
    return _ForwardWalk(container, stream, targets, path).run(duration)


def _keyframes_at(container, stream, targets: list[Fraction], path: str) -> list[tuple[Fraction, av.VideoFrame]]:
    """Opt-in cheap sampling: the keyframe at or before each target (one
    decoded frame per target). Not Data-Juicer's frames."""
    time_base = Fraction(stream.time_base)
    picked = []
    for target in targets:
        container.seek(int(target / time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            picked.append((_frame_time(frame, time_base, path), frame))
            break
    return picked


def frames_at(path: str, times: Sequence[float], max_side: int | None = None,
              tolerance_s: float = 1e-4, color_conversion: ColorConversion = "dj") -> list[np.ndarray]:
    """The frames shown at ``times`` (seconds, as ``stats.jsonl`` saves
    them), decoded again exactly, RGB, scaled and converted as
    ``sample_video`` does: what ``textsieve report`` draws the saved boxes on. Raises a
    :class:`VideoError` when the file is gone, unreadable, or holds no frame
    at one of the times (it changed since the run)."""
    container = open_video(path)
    try:
        if not container.streams.video:
            raise VideoError(ErrorKind.NO_VIDEO_STREAM, f"{path}: no video stream", path)
        stream = container.streams.video[0]
        time_base = Fraction(stream.time_base)
        size = scaled_size(stream.codec_context.width, stream.codec_context.height, max_side)
        return [to_rgb(_frame_at(container, stream, time_base, t, tolerance_s, path), size, color_conversion)
                for t in times]
    except av.error.FFmpegError as exc:
        raise VideoError(ErrorKind.DECODE_ERROR, f"{path}: decoding failed ({exc})", path) from exc
    finally:
        container.close()


def _frame_at(container, stream, time_base: Fraction, time: float, tolerance_s: float, path: str) -> av.VideoFrame:
    # The saved time is a float of the frame's exact pts * time_base, so
    # rounding gives its pts back and the backward seek lands on its keyframe.
    container.seek(round(Fraction(time) / time_base), stream=stream, backward=True, any_frame=False)
    for attempt in ("seek", "from_start"):
        for frame in container.decode(stream):
            t = float(_frame_time(frame, time_base, path))
            if abs(t - time) <= tolerance_s:
                return frame
            if t > time + tolerance_s:
                break
        if attempt == "seek":
            # Past the time already: the demuxer overshot the keyframe (as
            # _exact_frames also meets); decode from the start instead.
            container.seek(0)
    raise VideoError(ErrorKind.DECODE_ERROR,
                     f"{path}: no frame at {time:.3f} s; the file changed since the run (run it again to re-judge)",
                     path)
