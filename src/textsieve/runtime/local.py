"""The local executor: N decode processes feed M detector replicas on one
machine, as the plan says; this process schedules, batches, decides and
writes, and never builds a model.

Why not a process pool: a pool cannot kill one task that hangs, nor tell
which task a dead worker held. The supervisor here gives each worker one
task at a time over its own pipe, so it always knows what a worker holds:
a decode past its time limit is killed and recorded as ``timeout``; a worker
that dies is replaced and its task retried once, then recorded as
``worker_crashed``. Memory stays flat: samples are read lazily, at most
``max_open_samples`` are in flight, and decoding pauses while the buffer of
decoded frames waiting for a replica is over its byte budget.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from ..config import RunConfig
from ..data.dataset import read_rows
from ..errors import ErrorKind, VideoError
from ..outcome import VideoStats
from ..resources.planner import Plan
from .collector import Collector
from .planning import detector_spec
from .steps import SampleJob, error_outcome, judge, limits_of, prepare, video_stats
from .workers import Faults, ReplicaSpec, decode_worker, replica_worker

log = logging.getLogger(__name__)
CTX = mp.get_context("spawn")


@dataclass
class VideoState:
    path: str
    attempts: int = 0  # decode or detection attempts lost to crashes
    sampled: Any = None  # SampledVideo without images, once decoded
    results: list = field(default_factory=list)  # per frame: Detections or error record
    waiting: int = 0  # frames not yet detected


@dataclass
class SampleState:
    job: SampleJob
    videos: dict[str, VideoState]
    stats: dict[str, VideoStats] = field(default_factory=dict)
    failed: bool = False


@dataclass
class Frame:
    sample: int
    path: str
    slot: int  # index among the video's sampled frames
    image: np.ndarray


@dataclass
class Worker:
    kind: str  # decode | replica
    index: int
    proc: Any
    conn: Any
    task: Any = None  # (sample, path) for a decoder; list[Frame] for a replica
    started: float = 0.0
    batch_size: int = 1  # replicas: the size they currently handle


class LocalExecutor:
    def __init__(self, config: RunConfig, plan: Plan, restart: bool = False, faults: Faults | None = None,
                 max_wait_s: float = 0.2, buffer_bytes: int = 512 << 20):
        self.config, self.plan = config, plan
        self.faults = faults or Faults.from_env()
        self.max_wait_s = max_wait_s
        self.buffer_limit = buffer_bytes
        self.op = config.filter
        self.limits = limits_of(config)
        self.collector = Collector(config, plan, "local", restart=restart)
        self.samples: dict[int, SampleState] = {}
        self.tasks: deque[tuple[int, str]] = deque()  # videos waiting for a decoder
        self.buffer: dict[tuple, deque[Frame]] = {}  # frames waiting for a replica, by shape
        self.buffer_since: dict[tuple, float] = {}
        self.buffered_bytes = 0
        self.max_open = max(8, 4 * (plan.decoders + len(plan.replicas) * plan.batch_size))
        self.decoders: list[Worker] = []
        self.replicas: list[Worker] = []
        self.restarts = {"decode": 0, "replica": 0}
        self.busy = {"replica": 0.0}  # seconds the replicas spent detecting (incl. their first model load)
        self.batches: list[int] = []
        self._next_id = 0

    # ---- workers -----------------------------------------------------------
    def _spawn_decoder(self, index: int) -> Worker:
        parent, child = CTX.Pipe()
        args = (child, self.op.model_dump(), asdict(self.limits), self.faults, self.plan.decoder_threads)
        proc = CTX.Process(target=decode_worker, args=args,
                           name=f"textsieve-decode-{index}", daemon=True)
        proc.start()
        child.close()
        return Worker("decode", index, proc, parent)

    def _replica_spec(self, index: int) -> ReplicaSpec:
        replica = self.plan.replicas[index]
        visible = None
        if replica.device.startswith("cuda"):
            gpu = next(g for g in self.plan.gpus if f"cuda:{g.index}" == replica.device)
            visible = gpu.uuid if gpu.uuid.startswith("GPU-") and not gpu.uuid.startswith("GPU-sim") else str(gpu.index)
        name, params = detector_spec(self.config)
        return ReplicaSpec(replica, visible, self.plan.batch_size, name, params, self.config.cpu_fallback)

    def _spawn_replica(self, index: int) -> Worker:
        parent, child = CTX.Pipe()
        proc = CTX.Process(target=replica_worker, args=(child, self._replica_spec(index), self.faults),
                           name=f"textsieve-replica-{index}", daemon=True)
        proc.start()
        child.close()
        return Worker("replica", index, proc, parent, batch_size=self.plan.batch_size)

    # ---- samples -----------------------------------------------------------
    def _open_samples(self, rows) -> bool:
        """Read rows until enough samples are in flight; False when the dataset is exhausted."""
        while len(self.samples) < self.max_open:
            row = next(rows, None)
            if row is None:
                return False
            if row.index in self.collector.done:
                continue
            job = prepare(row, self.op, str(self.config.dataset.parent.resolve()))
            if not isinstance(job, SampleJob):
                self.collector.add(job)
                continue
            state = SampleState(job, {p: VideoState(p) for p in job.unique})
            self.samples[row.index] = state
            if not job.unique:
                self._finish(row.index)
            for path in job.unique:
                self.tasks.append((row.index, path))
        return True

    def _fail(self, index: int, record: dict) -> None:
        state = self.samples.pop(index, None)
        if state is None:
            return
        self.collector.add(error_outcome(state.job.row, VideoError(ErrorKind(record["kind"]), record["message"], record.get("video"))))

    def _finish(self, index: int) -> None:
        state = self.samples.pop(index)
        self.collector.add(judge(state.job, state.stats, self.op))

    def _on_decoded(self, index: int, path: str, sampled) -> None:
        state = self.samples.get(index)
        if state is None:
            return
        video = state.videos[path]
        images, sampled.images = sampled.images, []
        video.sampled, video.results, video.waiting = sampled, [None] * len(images), len(images)
        for slot, image in enumerate(images):
            self._buffer_frame(Frame(index, path, slot, image))

    def _buffer_frame(self, frame: Frame, front: bool = False) -> None:
        shape = frame.image.shape
        queue = self.buffer.setdefault(shape, deque())
        (queue.appendleft if front else queue.append)(frame)
        self.buffer_since.setdefault(shape, time.monotonic())
        self.buffered_bytes += frame.image.nbytes

    def _on_detected(self, frames: list[Frame], results: list) -> None:
        for frame, result in zip(frames, results):
            state = self.samples.get(frame.sample)
            if state is None:
                continue  # the sample already failed
            video = state.videos[frame.path]
            video.results[frame.slot] = result
            video.waiting -= 1
            if video.waiting == 0:
                try:
                    state.stats[frame.path] = video_stats(video.sampled, video.results, self.op)
                except VideoError as exc:
                    self._fail(frame.sample, exc.record())
                    continue
                if len(state.stats) == len(state.videos):
                    self._finish(frame.sample)

    # ---- scheduling --------------------------------------------------------
    def _dispatch(self, decoding_done: bool) -> None:
        for w in self.decoders:
            while w.task is None and self.tasks and self.buffered_bytes < self.buffer_limit:
                index, path = self.tasks.popleft()
                if index in self.samples:  # else the sample already failed
                    w.task, w.started = (index, path), time.monotonic()
                    self._next_id += 1
                    w.conn.send((self._next_id, path))
        now = time.monotonic()
        for w in self.replicas:
            if w.task is not None or not self.buffer:
                continue
            # the fullest shape group first; a partial batch goes when it waited long enough
            shape = max(self.buffer, key=lambda s: (len(self.buffer[s]) >= w.batch_size, now - self.buffer_since[s]))
            queue = self.buffer[shape]
            ready = len(queue) >= w.batch_size or now - self.buffer_since[shape] >= self.max_wait_s or decoding_done
            if not ready:
                continue
            batch = []
            while queue and len(batch) < w.batch_size:
                frame = queue.popleft()
                self.buffered_bytes -= frame.image.nbytes
                if frame.sample in self.samples:
                    batch.append(frame)
            if queue:
                self.buffer_since[shape] = now
            else:
                del self.buffer[shape], self.buffer_since[shape]
            if batch:
                w.task, w.started = batch, now
                self._next_id += 1
                w.conn.send((self._next_id, [f.image for f in batch]))

    def _lost(self, w: Worker) -> None:
        """A worker died: retry what it held once, then record it."""
        self.restarts[w.kind] += 1
        log.warning("%s worker %d died (exit %s); restarting it", w.kind, w.index, w.proc.exitcode)
        held = w.task
        w.task = None
        if w.kind == "decode" and held is not None:
            index, path = held
            state = self.samples.get(index)
            if state is not None:
                video = state.videos[path]
                video.attempts += 1
                if video.attempts >= 2:
                    self._fail(index, {"kind": ErrorKind.WORKER_CRASHED.value, "video": path,
                                       "message": f"{path}: the decode worker died on it twice"})
                else:
                    self.tasks.appendleft(held)
        elif held:
            retried = set()
            for frame in reversed(held):
                state = self.samples.get(frame.sample)
                if state is None:
                    continue
                video = state.videos[frame.path]
                if frame.path not in retried:
                    video.attempts += 1
                    retried.add(frame.path)
                if video.attempts >= 2:
                    self._fail(frame.sample, {"kind": ErrorKind.WORKER_CRASHED.value, "video": frame.path,
                                              "message": f"{frame.path}: a detector replica died on its frames twice"})
                else:
                    self._buffer_frame(frame, front=True)
        w.conn.close()
        w.proc.join(1)
        fresh = self._spawn_decoder(w.index) if w.kind == "decode" else self._spawn_replica(w.index)
        (self.decoders if w.kind == "decode" else self.replicas)[w.index] = fresh

    def _check_timeouts(self) -> None:
        limit = self.config.decode_timeout_s
        for w in list(self.decoders):
            if w.task is not None and time.monotonic() - w.started > limit:
                index, path = w.task
                w.task = None
                w.proc.kill()
                w.proc.join(5)
                w.conn.close()
                self._fail(index, {"kind": ErrorKind.TIMEOUT.value, "video": path,
                                   "message": f"{path}: decoding took over {limit:g} s and was stopped"})
                self.decoders[w.index] = self._spawn_decoder(w.index)

    def _receive(self, w: Worker, msg) -> None:
        if w.kind == "decode":
            index, path = w.task
            w.task = None
            if msg[0] == "ok":
                self._on_decoded(index, path, msg[2])
            else:
                self._fail(index, msg[2])
        else:
            batch, w.task = w.task, None
            w.batch_size = msg[3]
            self.busy["replica"] += msg[4]
            self.batches.append(len(batch))
            self._on_detected(batch, msg[2])

    # ---- main loop ---------------------------------------------------------
    def run(self) -> dict:
        started = time.monotonic()
        self.decoders = [self._spawn_decoder(i) for i in range(self.plan.decoders)]
        self.replicas = [self._spawn_replica(i) for i in range(len(self.plan.replicas))]
        rows = iter(read_rows(self.config.dataset))
        more = True
        try:
            while True:
                if more:
                    more = self._open_samples(rows)
                if not more and not self.samples:
                    break
                decoding_done = not more and not self.tasks and all(w.task is None for w in self.decoders)
                self._dispatch(decoding_done)
                workers = self.decoders + self.replicas
                ready = wait([w.conn for w in workers] + [w.proc.sentinel for w in workers], timeout=self.max_wait_s)
                for w in workers:
                    if w.conn in ready:
                        try:
                            msg = w.conn.recv()
                        except (EOFError, OSError):
                            self._lost(w)
                            continue
                        self._receive(w, msg)
                    elif w.proc.sentinel in ready and not w.proc.is_alive():
                        self._lost(w)
                self._check_timeouts()
        finally:
            self._shutdown()
        return self.collector.finish(
            detector={"name": self.config.filter.detector, "replicas": [asdict(r) for r in self.plan.replicas], "batch_size": self.plan.batch_size},
            workers={"decoders": self.plan.decoders, "replicas": len(self.plan.replicas), "restarts": self.restarts,
                     "replica_busy_s": round(self.busy["replica"], 3), "batches": len(self.batches),
                     "mean_batch": round(sum(self.batches) / max(1, len(self.batches)), 2)},
            wall_s=round(time.monotonic() - started, 3),
        )

    def _shutdown(self) -> None:
        for w in self.decoders + self.replicas:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 10
        for w in self.decoders + self.replicas:
            w.proc.join(max(0.1, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1)
