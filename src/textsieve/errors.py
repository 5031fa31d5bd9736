"""Per-sample failures: every kind a sample can end in ``errors.jsonl`` with.

A :class:`VideoError` fails one sample and never the run (unless ``--strict``).
Setup problems (missing weights, a bad recipe) are :class:`ConfigError` and
stop the run before any work starts.
"""

from __future__ import annotations

from enum import Enum


class ErrorKind(str, Enum):
    MISSING_FILE = "missing_file"  # path does not exist
    EMPTY_FILE = "empty_file"  # zero bytes
    UNREADABLE = "unreadable"  # FFmpeg cannot open it: not a video, or cut before its index
    NO_VIDEO_STREAM = "no_video_stream"  # e.g. audio only
    TRUNCATED = "truncated"  # decoding ends well before the declared duration
    DECODE_ERROR = "decode_error"  # opens, but frames cannot be decoded
    BAD_TIMESTAMPS = "bad_timestamps"  # frames without usable presentation times
    NO_DURATION = "no_duration"  # no duration from stream, container or frames
    BAD_RESOLUTION = "bad_resolution"  # zero or absurd frame size
    TOO_LONG = "too_long"  # absurd duration
    BAD_SAMPLE = "bad_sample"  # the dataset row itself is malformed
    TIMEOUT = "timeout"  # decoding exceeded its time limit
    GPU_OOM = "gpu_oom"  # out of GPU memory even at batch 1
    WORKER_CRASHED = "worker_crashed"  # a worker died twice on this sample
    DETECTOR_ERROR = "detector_error"  # the detector raised on these frames


class VideoError(Exception):
    """A sample cannot be judged; carries the kind and the offending video."""

    def __init__(self, kind: ErrorKind, message: str, video: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.video = video

    def record(self) -> dict:
        return {"kind": self.kind.value, "video": self.video, "message": self.message}


class ConfigError(Exception):
    """The run cannot start: bad recipe, flags or environment."""
