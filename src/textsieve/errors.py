"""Failures, in three classes, so that none can hide as another:

- :class:`Failure` / :class:`VideoError`: one sample cannot be judged. It
  ends in ``errors.jsonl`` with its kind and the run goes on.
- :class:`ConfigError`: the run cannot start (bad recipe, flags, missing
  model or dataset, a folder another run holds). Nothing is written; exit 2.
- :class:`RunStopped` (and :class:`SystemicFailure`): the run started, then
  met something that would fail every sample (a model that cannot load, the
  same detector failure again and again, a full disk). It stops, says what to
  fix, and leaves the export folder so the same command resumes; exit 4.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    TIMEOUT = "timeout"  # decoding or detection exceeded its time limit
    GPU_OOM = "gpu_oom"  # out of GPU memory even at batch 1
    WORKER_CRASHED = "worker_crashed"  # a worker died twice on this sample
    DETECTOR_ERROR = "detector_error"  # the detector raised on these frames
    REMOTE_READ = "remote_read"  # object storage or HTTP failed to serve the file


# Kinds that say nothing about the sample itself: `textsieve run --retry-errors`
# judges these samples again.
TRANSIENT_KINDS = frozenset({ErrorKind.TIMEOUT, ErrorKind.WORKER_CRASHED, ErrorKind.GPU_OOM,
                             ErrorKind.DETECTOR_ERROR, ErrorKind.REMOTE_READ})


@dataclass(frozen=True)
class Failure:
    """Why a frame, a video or a sample could not be judged. ``cause`` is
    the message without the sample's own paths: equal causes on many
    samples in a row mean the detector, not the data, is broken."""

    kind: ErrorKind
    message: str
    video: str | None = None
    cause: str | None = None  # set for detection-stage failures only

    def record(self) -> dict:
        return {"kind": self.kind.value, "video": self.video, "message": self.message}

    def for_video(self, path: str) -> "Failure":
        """This frame failure, charged to its video."""
        return Failure(self.kind, f"{path}: {self.message}", path, self.cause or f"{self.kind.value}: {self.message}")


class VideoError(Exception):
    """A sample cannot be judged; carries the kind and the offending video."""

    def __init__(self, kind: ErrorKind, message: str, video: str | None = None, cause: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.video = video
        # set when the failure is not the file's own (a store that does not
        # answer): many samples in a row with one cause stop the run
        self.cause = cause

    @property
    def failure(self) -> Failure:
        return Failure(self.kind, self.message, self.video, self.cause)

    def record(self) -> dict:
        return self.failure.record()


def store_failure(path: str, exc: BaseException) -> VideoError:
    """A remote video whose store failed to serve it (refused, reset, timed
    out, no such endpoint): ``remote_read``, never the file's own error. Its
    cause names the store, not the object, so that a store that went away
    stops the run (exit 4, resumable) instead of failing every sample."""
    from urllib.parse import urlsplit

    parts = urlsplit(path)
    store = f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return VideoError(ErrorKind.REMOTE_READ, f"{path}: could not be read from its store ({type(exc).__name__}: {exc})",
                      path, cause=f"remote_read: the store {store} did not serve videos ({type(exc).__name__})")


class ConfigError(Exception):
    """The run cannot start: bad recipe, flags or environment."""


class RunStopped(Exception):
    """The run stopped part-way for a reason no sample is to blame for; the
    export folder stays resumable with the same command."""


class SystemicFailure(RunStopped):
    """A failure that would hit every sample: the detector cannot load, the
    device is missing, or the same detector failure repeats."""
