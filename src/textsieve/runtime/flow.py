"""The per-sample flow, owned once for every executor.

Two owners, in the manner of datatrove's executor base class (whose local,
Ray and Slurm executors only decide where ranks run):

- :class:`DetectorReplica` owns one model on one device: it builds the
  model there, runs frames through it in batches that halve on
  out-of-memory (releasing the cache) and grow back, falls back to the CPU
  at batch 1 when allowed, isolates a frame that makes the detector raise,
  applies injected faults, and returns a typed result per frame.
- :class:`SampleAssembly` owns samples from dataset row to outcome: it
  names the videos to decode, holds decoded frames and hands them out in
  batches of one shape, joins detections back into videos and samples,
  retries work lost to a crashed or hung worker once, applies the
  calibration (resolved once), and emits outcomes.

The serial executor is a loop over both; the local executor is a process
supervisor around them; the Ray executor runs them inside its actors.
"""

from __future__ import annotations

import importlib
from fractions import Fraction
import re
import signal
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from ..calibration import Calibration
from ..judging import route
from ..config import OcrFilter
from ..data.dataset import Row
from ..detect import registry
from ..detect.area import Detections, frame_text_ratio, largest_box_share, polygons
from ..errors import ConfigError, ErrorKind, Failure, SystemicFailure, VideoError
from ..judging import in_range, video_ratio
from ..outcome import SampleOutcome, VideoStats
from ..resources.planner import Replica
from ..video.frames import Limits, SampledVideo
from ..video.pieces import Piece, pieces, video_decision
from .batching import BatchSizer, is_oom
from .buffer import Frame, FrameBuffer, FrameKey
from .faults import Faults
from .kind_step import judge_kinds, kind_frames_of
from .steps import SampleJob, decode, error_outcome, judge, prepare, probe_only


# ---- time limits for work done in the calling process -------------------------

class Deadline(BaseException):
    """A time limit ran out. A BaseException, so that the generic
    ``except Exception`` around decoding or detection cannot swallow it."""


T = TypeVar("T")


def within(seconds: float | None, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, or :class:`Deadline` after ``seconds``. Used where work
    runs in the calling process (serial, Ray's decode tasks); the local
    executor and Ray's detector actors kill a worker process instead.

    In the main thread a timer signal interrupts the call itself. Elsewhere
    no signal can reach it, so the call runs on a helper thread and is
    abandoned at the deadline: the caller goes on, the sample is recorded
    as a timeout, and the helper ends when the call does (a thread cannot be
    killed; where that matters, work runs in a process that can be)."""
    if not seconds:
        return fn(*args)
    if threading.current_thread() is threading.main_thread():
        def expire(signum, frame):
            raise Deadline()

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    box: list = []

    def call() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as exc:  # handed to the caller
            box.append((False, exc))

    helper = threading.Thread(target=call, name="textsieve-within", daemon=True)
    helper.start()
    helper.join(seconds)
    if not box:
        raise Deadline()
    ok, value = box[0]
    if not ok:
        raise value
    return value


def decode_timeout(path: str, limit: float) -> Failure:
    return Failure(ErrorKind.TIMEOUT, f"{path}: decoding took over {limit:g} s and was stopped", path)


DETECT_TIMEOUT = "detection of its frames took over {limit:g} s twice and was stopped"
REPLICA_CRASHED = "a detector replica died on its frames twice"
DECODER_CRASHED = "the decode worker died on it twice"


# ---- messages ---------------------------------------------------------------------

@dataclass(frozen=True)
class DecodeTask:
    """One video of one sample, to decode: whole, one piece of it
    (``segment_s``), or only probed for its duration (to cut it in pieces)."""

    sample: int
    path: str
    piece: Piece | None = None
    probe: bool = False

    @property
    def part(self) -> int:
        return self.piece.index if self.piece is not None else 0

    @property
    def label(self) -> str:
        """The path, and which piece (``#piece3``) or ``#probe``: what decoder faults match."""
        return self.path + ("#probe" if self.probe else f"#piece{self.piece.index}" if self.piece is not None else "")


FrameResult = Detections | Failure


# ---- decoding -----------------------------------------------------------------------

def decode_video(task: DecodeTask, op: OcrFilter, limits: Limits, threads: int = 0) -> SampledVideo:
    """Decode one task's video (or piece, or only probe it). Executors call
    it through ``Faults.decoder``, which injects decoder faults for tests."""
    if task.probe:
        return probe_only(task.path, limits)
    video = decode(task.path, op, limits, threads, task.piece)
    if op.kind_frames is not None:
        video.kind_frames = kind_frames_of(task.path, op, limits, threads)
    return video


def decode_here(task: DecodeTask, op: OcrFilter, limits: Limits, timeout_s: float | None,
                decode_fn: Callable[..., SampledVideo] = decode_video) -> SampledVideo | Failure:
    """Decode in the calling process (serial, Ray) within a time limit."""
    try:
        return within(timeout_s, decode_fn, task, op, limits)
    except VideoError as exc:
        return exc.failure
    except Deadline:
        return decode_timeout(task.path, timeout_s or 0)


# ---- the detector replica ---------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """A registry model and its loader parameters; ``share`` of the replica's
    GPU memory is its own when a replica hosts several (the cascade);
    ``provider`` is the module that registers a model defined outside the
    registry (imported first in a worker process)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    share: float = 1.0
    provider: str | None = None

    def detector(self) -> registry.Detector:
        """Its registry description, its provider imported first (in a worker
        process, a detector described outside textsieve is not known until then)."""
        if self.provider:
            importlib.import_module(self.provider)
        return registry.describe(self.name)


@dataclass(frozen=True)
class ReplicaSpec:
    """What a replica runs and where: its models, the planned replica
    (device, threads, memory cap), its largest batch, and whether a frame
    that runs out of GPU memory at batch 1 may go to the CPU."""

    models: tuple[ModelSpec, ...]
    replica: Replica
    batch_size: int
    cpu_fallback: bool = True
    visible: str | None = None  # CUDA_VISIBLE_DEVICES for a child process that hosts it

    def on(self, device: str) -> "ReplicaSpec":
        return replace(self, replica=replace(self.replica, device=device))

    def replicas(self, faults: Faults) -> dict[str, "DetectorReplica"]:
        """One DetectorReplica per model, by name (built lazily)."""
        return {m.name: DetectorReplica(self, m, faults) for m in self.models}


@dataclass
class ReplicaCounters:
    calls: int = 0  # forward passes asked of the model
    oom_backoffs: int = 0  # out-of-memory errors met (batch halved or frame sent on)
    cpu_fallback_frames: int = 0
    failed_frames: int = 0  # frames returned as a Failure

    def add(self, other: "ReplicaCounters") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def to_json(self) -> dict:
        return asdict(self)


def _cause(exc: BaseException) -> str:
    """An exception's type and first line with numbers masked: the same
    failure on different frames reads the same."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {re.sub(r'[0-9]+', 'N', first)}"


Model = Callable[[Sequence[np.ndarray]], list[Detections]]


class DetectorReplica:
    """One model on one device, built on first use in the calling process."""

    def __init__(self, spec: ReplicaSpec, model: ModelSpec, faults: Faults = Faults(),
                 build: Callable[[str], Model] | None = None):
        self.spec, self.model, self.faults = spec, model, faults
        self.device = spec.replica.device
        model.detector()  # imports its provider: a detector described outside textsieve registers itself
        self.key = registry.prepare(model.name, **dict(model.params))
        planned = spec.replica
        if model.share < 1.0:  # the model's part of a replica that hosts several
            planned = replace(planned, memory_fraction=planned.memory_fraction and planned.memory_fraction * model.share,
                              memory_bytes=planned.memory_bytes and int(planned.memory_bytes * model.share))
        # injectable for tests; by default the registry builds it, bound to the plan
        self._build = build or (lambda device: registry.get(self.key, device, planned if device == self.device else None))
        self.sizer = BatchSizer(spec.batch_size)
        self.counters = ReplicaCounters()
        self._model: Model | None = None
        self._detect: Callable[[Sequence[FrameKey], Sequence[np.ndarray]], list[Detections]] | None = None
        self._fallback: Model | None = None

    def load(self) -> Model:
        """Build the model now; a model that cannot be built stops the run."""
        if self._model is None:
            try:
                model = self._model = self._build(self.device)
            except ConfigError as exc:
                raise SystemicFailure(f"detector {self.model.name} cannot load on {self.device}: {exc}") from exc
            except Exception as exc:
                raise SystemicFailure(
                    f"detector {self.model.name} could not be built on {self.device}: {exc!r}. No sample was judged "
                    "with it: fix the model files or the device (see docs/weights.md), then run the same command "
                    "again; it resumes") from exc
            # injected faults (tests) wrap the model from outside; none: the model itself
            scope = "" if len(self.spec.models) == 1 else f"{self.model.name}-"
            self._detect = self.faults.detector(lambda keys, images: model(images), scope)
        return self._model

    def close(self) -> None:
        self._model = self._detect = self._fallback = None
        registry.release(self.key)

    def detect(self, keys: Sequence[FrameKey], images: Sequence[np.ndarray]) -> list[FrameResult]:
        """One result per frame: its detections, or why it has none. A
        detector exception on a batch is retried frame by frame, so that only
        the frames that raise on their own fail."""
        self.load()
        try:
            return self._with_backoff(keys, images)
        except Exception as exc:
            if len(images) > 1:
                return [r for k, image in zip(keys, images) for r in self.detect([k], [image])]
            self.counters.failed_frames += 1
            return [Failure(ErrorKind.DETECTOR_ERROR, f"detector failed: {exc!r}", cause=_cause(exc))]

    def _with_backoff(self, keys: Sequence[FrameKey], images: Sequence[np.ndarray]) -> list[FrameResult]:
        """Chunks of ``sizer.current`` frames. On out-of-memory: free the
        cache, halve, retry the same frames; at one frame, run it on the CPU
        if allowed, else a ``gpu_oom`` failure for it."""
        out: list[FrameResult | None] = [None] * len(images)
        i = 0
        while i < len(images):
            size = min(self.sizer.current, len(images) - i)
            try:
                out[i:i + size] = self._forward(keys[i:i + size], images[i:i + size])
                self.sizer.on_success()
                i += size
                continue
            except Exception as exc:
                if not is_oom(exc):
                    raise
                self.counters.oom_backoffs += 1
                registry.free_device_cache()
                if size > 1:
                    self.sizer.on_oom()
                    continue
                oom = exc
            if self.spec.cpu_fallback and self.device != "cpu":
                if self._fallback is None:
                    self._fallback = self._build("cpu")
                out[i] = self._fallback(images[i:i + 1])[0]
                self.counters.cpu_fallback_frames += 1
            else:
                self.counters.failed_frames += 1
                out[i] = Failure(ErrorKind.GPU_OOM, f"out of GPU memory at batch size 1: {oom}",
                                 cause="gpu_oom: out of GPU memory at batch size 1")
            i += 1
        return out  # type: ignore[return-value]

    def _forward(self, keys: Sequence[FrameKey], images: Sequence[np.ndarray]) -> list[Detections]:
        self.counters.calls += 1
        assert self._detect is not None
        return self._detect(keys, images)


# ---- the sample assembly ----------------------------------------------------------

CASCADE = ("ppocr", "craft")  # the fast detector, then the reference for what it cannot settle


def stages_of(op: OcrFilter) -> tuple[str, ...]:
    """The models a video's frames may pass through, in order."""
    return CASCADE if op.detector == "cascade" else (op.detector,)


@dataclass
class _Part:
    """A whole video, or one piece of it: what is judged from one decode."""

    attempts: int = 0  # decode or detection attempts lost to crashed or hung workers
    sampled: SampledVideo | None = None  # without images, once decoded
    stage: str = ""  # the model its frames are waiting for
    frames: list[Frame] = field(default_factory=list)  # kept while a later stage may need them
    results: list = field(default_factory=list)  # per frame: Detections or Failure
    waiting: int = 0  # frames not yet detected at this stage
    fast: VideoStats | None = None  # the cascade's fast verdict, when CRAFT re-judges
    routed: str | None = None  # why CRAFT re-judges
    stats: VideoStats | None = None  # once judged
    cut: Failure | None = None  # a piece past the end of a truncated video


@dataclass
class _Video:
    parts: dict[int, _Part] = field(default_factory=lambda: {0: _Part()})
    pieces: list[Piece] | None = None  # with segment_s, once probed


@dataclass
class _Sample:
    job: SampleJob
    videos: dict[str, _Video]
    stats: dict[str, VideoStats] = field(default_factory=dict)


class SampleAssembly:
    """Samples in flight, from their row to their outcome.

    ``release`` is called with a frame's image once nothing needs it any
    more (detected by its last stage, or its sample failed): an executor
    that keeps frames in shared memory frees the slot there.

    Under ``detector: cascade`` a video's frames go to the fast detector
    first; its verdict (mapped onto CRAFT's scale by the calibration) stands
    unless :func:`textsieve.judging.route` sends the video to CRAFT, which
    re-judges the same frames.

    With ``segment_s`` a video is first probed for its duration, then cut
    into pieces, each decoded as a task of its own (so that many decoders
    share one long video) and judged on its own; the video's verdict comes
    from its pieces' (video/pieces.py). New tasks appear in :meth:`tasks`.
    """

    def __init__(self, op: OcrFilter, base_dir: str, calibration: Calibration | None = None,
                 release: Callable[[Any], None] | None = None):
        if op.calibration is not None and calibration is None:
            raise ValueError("the op names a calibration: pass it, resolved once")
        self.op, self.base_dir, self.calibration = op, base_dir, calibration
        self.stages = stages_of(op)
        self._release = release or (lambda image: None)
        self._samples: dict[int, _Sample] = {}
        self._buffer = FrameBuffer()
        self._done: list[SampleOutcome] = []
        self._tasks: list[DecodeTask] = []

    # -- rows and decoding --
    @property
    def open_samples(self) -> int:
        return len(self._samples)

    @property
    def buffered_frames(self) -> int:
        return len(self._buffer)

    @property
    def buffered_bytes(self) -> int:
        return self._buffer.bytes

    def open(self, row: Row) -> list[DecodeTask]:
        """Start a sample; returns the videos to decode (none for a bad row
        or a sample without videos, whose outcome is ready at once)."""
        job = prepare(row, self.op, self.base_dir)
        if isinstance(job, SampleOutcome):
            self._done.append(job)
            return []
        if not job.unique:
            self._done.append(judge(job, {}, self.op))
            return []
        self._samples[row.index] = _Sample(job, {p: _Video() for p in job.unique})
        probe = self.op.segment_s is not None
        return [DecodeTask(row.index, p, probe=probe) for p in job.unique]

    def tasks(self) -> list[DecodeTask]:
        """Decode tasks that appeared since the last call (a probed video's pieces)."""
        new, self._tasks = self._tasks, []
        return new

    def wants(self, task: DecodeTask) -> bool:
        """False once the task's sample has failed: skip decoding it."""
        return task.sample in self._samples

    def decoded(self, task: DecodeTask, sampled: SampledVideo, images: Sequence[Any] | None = None) -> None:
        """A video's (or piece's) frames arrived; ``images`` replaces
        ``sampled.images`` when the executor moved them elsewhere (shared memory)."""
        images = sampled.images if images is None else images
        state = self._samples.get(task.sample)
        if state is None:
            for image in images:
                self._release(image)
            return
        video = state.videos[task.path]
        if task.probe:
            video.pieces = pieces(sampled.info.duration, Fraction(self.op.segment_s).limit_denominator(1000))
            video.parts = {piece.index: _Part() for piece in video.pieces}
            self._tasks += [DecodeTask(task.sample, task.path, piece) for piece in video.pieces]
            return
        part = video.parts[task.part]
        part.sampled = replace(sampled, images=[])
        part.frames = [Frame(FrameKey(task.sample, task.path, slot, task.part), image, self.stages[0])
                       for slot, image in enumerate(images)]
        self._start_stage(part, self.stages[0])

    def _start_stage(self, part: _Part, model: str) -> None:
        part.stage = model
        part.results, part.waiting = [None] * len(part.frames), len(part.frames)
        for frame in part.frames:
            frame.model = model
            self._buffer.push(frame)

    def decode_failed(self, task: DecodeTask, failure: Failure) -> None:
        state = self._samples.get(task.sample)
        if state is not None and task.piece is not None and task.piece.index > 0 and \
                failure.kind in (ErrorKind.TRUNCATED, ErrorKind.DECODE_ERROR):
            # a long video cut short (or broken part-way): the pieces before are still judged
            part = state.videos[task.path].parts[task.part]
            part.cut = failure
            self._part_done(task.sample, state, task.path)
            return
        self.fail(task.sample, failure)

    def deliver(self, task: DecodeTask, result: SampledVideo | Failure) -> None:
        if isinstance(result, Failure):
            self.decode_failed(task, result)
        else:
            self.decoded(task, result)

    def decode_lost(self, task: DecodeTask) -> bool:
        """The worker decoding ``task`` died: True to decode it again, False
        once it has happened twice (the sample is then failed)."""
        state = self._samples.get(task.sample)
        if state is None:
            return False
        part = state.videos[task.path].parts.get(task.part) if not task.probe else state.videos[task.path].parts[0]
        part.attempts += 1
        if part.attempts >= 2:
            self.fail(task.sample, Failure(ErrorKind.WORKER_CRASHED, f"{task.path}: {DECODER_CRASHED}", task.path))
            return False
        return True

    # -- frames and detection --
    def take(self, sizes: Callable[[str], int], max_wait_s: float = 0.0, flush: bool = False,
             now: float | None = None) -> tuple[str, list[Frame]]:
        """A batch for a replica (:meth:`FrameBuffer.take`)."""
        return self._buffer.take(sizes, max_wait_s, flush, now)

    def detected(self, frames: Sequence[Frame], results: Sequence[FrameResult]) -> None:
        for frame, result in zip(frames, results):
            frame.held = False
            key = frame.key
            state = self._samples.get(key.sample)
            if state is None:
                self._release(frame.image)
                continue  # the sample already failed
            part = state.videos[key.path].parts[key.part]
            part.results[key.slot] = result
            part.waiting -= 1
            if not part.waiting:
                self._stage_done(key.sample, state, key.path, part)

    def _stage_done(self, sample: int, state: _Sample, path: str, part: _Part) -> None:
        # every frame is back: the first failure in frame order fails the video
        failure = next((r for r in part.results if isinstance(r, Failure)), None)
        if failure is not None:
            self.fail(sample, failure.for_video(path))
            return
        stats = self._part_stats(part)
        if part.stage != self.stages[-1]:
            part.routed = self._route(part, stats)
            if part.routed is not None:
                part.fast = stats
                self._start_stage(part, self.stages[self.stages.index(part.stage) + 1])
                return
        for frame in part.frames:
            self._release(frame.image)
        part.frames = []
        part.stats = stats
        self._part_done(sample, state, path)

    def _part_done(self, sample: int, state: _Sample, path: str) -> None:
        video = state.videos[path]
        if any(p.stats is None and p.cut is None for p in video.parts.values()):
            return
        if video.pieces is None:
            state.stats[path] = video.parts[0].stats  # type: ignore[assignment]
        else:
            # judged up to the first piece that could not be decoded (a truncated video)
            judged = []
            for piece in video.pieces:
                if video.parts[piece.index].stats is None:
                    break
                judged.append(video.parts[piece.index].stats)
            if not judged:
                self.fail(sample, next(p.cut for p in video.parts.values() if p.cut is not None))
                return
            state.stats[path] = self._pieces_stats(video, judged)  # type: ignore[arg-type]
        if len(state.stats) == len(state.videos):
            self._samples.pop(sample)
            self._done.append(judge(state.job, state.stats, self.op))

    def _route(self, part: _Part, stats: VideoStats) -> str | None:
        """The cascade's question, after the fast stage: may its verdict stand?"""
        assert self.calibration is not None and self.calibration.margins is not None
        width, height = part.sampled.frame_size  # type: ignore[union-attr]
        box = max(largest_box_share(d, width, height) for d in part.results)
        return route(stats.ratio, box, stats.outside_calibration, self.op.min_area_ratio, self.op.max_area_ratio,
                     self.calibration.margins)

    def frames_lost(self, frames: Sequence[Frame], kind: ErrorKind, reason: str) -> None:
        """A replica died or hung holding ``frames``: each part gets one more
        try, then fails with ``kind`` and ``reason``."""
        charged: set[tuple[int, str, int]] = set()
        for frame in reversed(frames):  # pushed back to the front in their order
            frame.held = False
            key = frame.key
            state = self._samples.get(key.sample)
            if state is None:
                self._release(frame.image)
                continue
            part = state.videos[key.path].parts[key.part]
            if (key.sample, key.path, key.part) not in charged:
                charged.add((key.sample, key.path, key.part))
                part.attempts += 1
            if part.attempts >= 2:
                self.fail(key.sample, Failure(kind, f"{key.path}: {reason}", key.path, cause=f"{kind.value}: {reason}"))
            else:
                self._buffer.push(frame, front=True)

    def fail(self, sample: int, failure: Failure) -> None:
        """The sample ends as an error; its frames are let go."""
        state = self._samples.pop(sample, None)
        if state is None:
            return
        self._buffer.drop(sample)
        for video in state.videos.values():
            for part in video.parts.values():
                for frame in part.frames:
                    if not frame.held:  # a held frame is released when its replica gives it back
                        self._release(frame.image)
                part.frames = []
        self._done.append(error_outcome(state.job.row, failure))

    def outcomes(self) -> list[SampleOutcome]:
        """The outcomes finished since the last call."""
        done, self._done = self._done, []
        return done

    def _part_stats(self, part: _Part) -> VideoStats:
        sampled = part.sampled
        assert sampled is not None
        width, height = sampled.frame_size
        ratios = [frame_text_ratio(d, width, height, self.op.area_mode) for d in part.results]
        raw, outside = None, False
        # the calibration maps the fast detector's ratios; CRAFT's are already CRAFT's
        if self.calibration is not None and part.stage != "craft":
            raw, ratios = ratios, self.calibration(ratios)
            outside = max(raw) > self.calibration.fitted_range[1]
        info = sampled.info
        stats = VideoStats(path=info.path, ratio=video_ratio(ratios, self.op.aggregate), frame_times=sampled.times,
                           frame_ratios=ratios, raw_frame_ratios=raw, width=info.width, height=info.height,
                           duration_s=float(info.duration), decoded_frames=sampled.decoded,
                           outside_calibration=outside,
                           frame_boxes=[polygons(d) for d in part.results] if self.op.save_boxes else None)
        if len(self.stages) > 1:
            stats.decided_by = part.stage
            if part.fast is not None:
                stats.fast_ratio, stats.routed = part.fast.ratio, part.routed
        if self.op.kinds:
            judge_kinds(stats, part.results, sampled, self.op)
        return stats

    def _pieces_stats(self, video: _Video, judged: list[VideoStats]) -> VideoStats:
        """A video judged in pieces: each piece's range, ratio and keep; the
        video's ratio the mean of its pieces'; its frames all of theirs."""
        op = self.op
        spans = []
        for piece, stats in zip(video.pieces or [], judged):
            keep = in_range(stats.ratio, op.min_area_ratio, op.max_area_ratio, op.reversed_range)
            spans.append({**piece.to_json(), "ratio": stats.ratio, "keep": keep})
        ratio, keep = video_decision([s["ratio"] for s in spans], [s["keep"] for s in spans], op.segment_aggregate)
        cut = next((p for p in video.pieces or [] if video.parts[p.index].cut is not None), None)
        first = judged[0]
        merged = replace(first, ratio=ratio, frame_times=[t for s in judged for t in s.frame_times],
                         frame_ratios=[r for s in judged for r in s.frame_ratios],
                         raw_frame_ratios=None if first.raw_frame_ratios is None else
                         [r for s in judged for r in s.raw_frame_ratios or []],
                         decoded_frames=sum(s.decoded_frames for s in judged),
                         frame_boxes=None if first.frame_boxes is None else [b for s in judged for b in s.frame_boxes or []],
                         outside_calibration=any(s.outside_calibration for s in judged))
        merged.pieces, merged.keep = spans, keep
        merged.judged_until = float(cut.start) if cut is not None else None
        return merged


def detect_here(assembly: SampleAssembly, replicas: dict[str, DetectorReplica], timeout_s: float | None) -> None:
    """Run every buffered frame through the replicas in the calling process
    (serial, Ray), batch by batch. A batch past the time limit is lost like
    a hung replica's: retried once, then ``timeout``."""
    while True:
        model, frames = assembly.take(lambda name: replicas[name].sizer.current, flush=True)
        if not frames:
            return
        try:
            results = within(timeout_s, replicas[model].detect, [f.key for f in frames], [f.image for f in frames])
        except Deadline:
            assembly.frames_lost(frames, ErrorKind.TIMEOUT, DETECT_TIMEOUT.format(limit=timeout_s or 0))
            continue
        assembly.detected(frames, results)
