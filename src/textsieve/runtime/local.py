"""The local executor: N decode processes feed M detector replicas on one
machine, as the plan says; this process schedules and writes, and never
builds a model. The per-sample flow is the shared one
(:class:`~textsieve.runtime.flow.SampleAssembly` here,
:class:`~textsieve.runtime.flow.DetectorReplica` in each replica process):
this module only places it.

Why not a process pool: a pool cannot kill one task that hangs, nor tell
which task a dead worker held. The supervisor gives each worker one task at
a time over its own pipe, so it always knows what a worker holds: a decode
past its time limit is killed and recorded as ``timeout``; a replica past
its limit, or a worker that dies, is replaced and what it held is retried
once. Memory stays flat: samples are read lazily, at most
``max_open_samples`` are in flight, and decoding pauses while the decoded
frames waiting for a replica are over their byte budget.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Iterator

from ..data.dataset import Row
from ..errors import ConfigError, ErrorKind, SystemicFailure
from ..outcome import SampleOutcome
from ..report.summary import DetectorReport, ExecutorReport, LocalRestarts, LocalWorkers
from .collector import Collector
from .flow import DETECT_TIMEOUT, REPLICA_CRASHED, DecodeTask, ReplicaCounters, SampleAssembly, decode_timeout
from .lifecycle import Executor, RunSetup
from .shm import ALIGN, FramePool, SharedFrame, pool_size
from .workers import (DecodeFailed, DecodeRequest, Decoded, DetectRequest, Detected, ReplicaDown, ReplicaReady,
                      LOAD_TIMEOUT_S, MAX_LOAD_CRASHES, WorkerProcess, decode_worker, preload_for, replica_worker)

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, setup: RunSetup, max_wait_s: float = 0.2, buffer_bytes: int | None = None,
                 transport: str = "shm"):
        super().__init__(setup)
        plan = setup.plan
        if plan is None or not plan.ok:
            raise ConfigError((plan.error if plan else None) or "the plan found no device to run on")
        self.config, self.plan, self.op, self.faults = setup.config, plan, setup.op, setup.faults
        self.max_wait_s = max_wait_s
        self.buffer_limit = buffer_bytes or plan.frame_buffer_bytes  # decoded frames waiting, at most
        self.transport = transport  # "shm": frames in shared memory; "pipe": pickled through this process
        self.specs = setup.specs
        self.pool: FramePool | None = None
        self.decode_slots: dict[int, list[int]] = {}  # shared-memory slots each decoder holds
        self.largest_frame = 0  # bytes of the largest decoded frame so far
        self.assembly = SampleAssembly(self.op, setup.base_dir, setup.calibration, self._release)
        self.queue: deque[DecodeTask] = deque()  # videos waiting for a decoder
        self.max_open = max(8, 4 * (plan.decoders + len(plan.replicas) * plan.batch_size))
        self.decoders: list[WorkerProcess] = []
        self.replicas: list[WorkerProcess] = []
        # what each replica now handles, per model
        self.batch_sizes = [{m.name: plan.batch_size for m in spec.models} for spec in self.specs]
        self.restarts = {"decode": 0, "replica": 0}
        self.load_crashes = [0] * len(self.specs)
        self.counters = ReplicaCounters()
        self.busy_s = 0.0  # seconds the replicas spent detecting
        self.decode_tasks = [0] * plan.decoders  # tasks each decoder finished
        self.started = time.monotonic()
        self.ready_at: float | None = None  # when every replica had loaded its model
        self.batches: list[int] = []
        self.frames_note = ""

    # ---- frames in shared memory ---------------------------------------------
    def _open_pool(self) -> None:
        width, height = self.setup.frame_size
        slot_bytes = width * height * 3
        # at least two videos' frames: one decodes while the other is detected
        # (a budget of one let interval sampling at 1080p, 100 frames of 6 MB,
        # decode and detect by turns)
        self.buffer_limit = max(self.buffer_limit, 2 * self.op.frame_sample_num * slot_bytes)
        slots, why = pool_size(self.buffer_limit, slot_bytes, self.op.frame_sample_num)
        if self.transport == "shm" and slots:
            self.pool = FramePool.create(slots, slot_bytes)
        self.frames_note = why if self.transport == "shm" else "frames through the pipes (transport: pipe)"
        log.info("frame transport: %s", self.frames_note)

    def _release(self, image: Any) -> None:
        if isinstance(image, SharedFrame) and self.pool is not None:
            self.pool.drop(image)

    def _slots_per_task(self) -> int:
        """Slots for a task's frames: as many as frames until a frame has
        been seen, then packed at the largest frame size seen (a 1080p slot
        holds nine 360p frames), so that small frames let every decoder work."""
        per_slot = max(1, self.pool.slot_bytes // (-(-self.largest_frame // ALIGN) * ALIGN)) if self.largest_frame else 1
        return -(-self.op.frame_sample_num // per_slot)

    def _free_decode_slots(self, w: WorkerProcess, images: list[Any] = ()) -> None:
        """A decoder is done with its task: its slots now hold ``images``
        (none if it failed or died); the rest go back to the pool."""
        if self.pool is not None:
            self.pool.hold(self.decode_slots.pop(w.index, []), images)

    # ---- samples -----------------------------------------------------------
    def _open_samples(self, rows: Iterator[Row]) -> bool:
        """Read rows until enough samples are in flight; False when the dataset is exhausted."""
        while self.assembly.open_samples < self.max_open:
            row = next(rows, None)
            if row is None:
                return False
            self.queue.extend(self.assembly.open(row))
        return True

    # ---- scheduling --------------------------------------------------------
    def _dispatch(self, decoding_done: bool) -> None:
        self._dispatch_decoding()
        now = time.monotonic()
        for w in self.replicas:
            if w.task is None and w.ready:
                model, frames = self.assembly.take(self.batch_sizes[w.index].__getitem__, self.max_wait_s,
                                                   flush=decoding_done, now=now)
                if frames:
                    w.send(frames, DetectRequest(0, model, [f.key for f in frames], [f.image for f in frames]))

    def _dispatch_decoding(self) -> None:
        for w in self.decoders:
            while w.task is None and self.queue and self.assembly.buffered_bytes < self.buffer_limit:
                if not self.assembly.wants(self.queue[0]):  # its sample already failed
                    self.queue.popleft()
                    continue
                slots: list[int] = []
                if self.pool is not None:
                    # decoding waits for room: the pool is the frame budget. Only
                    # decoding waits: the replicas must still be fed, since
                    # detected frames are what give the slots back.
                    slots = self.pool.acquire(self._slots_per_task())
                    if slots is None:
                        return
                task = self.queue.popleft()
                self.decode_slots[w.index] = slots
                w.send(task, DecodeRequest(0, task, slots))

    def _lost(self, w: WorkerProcess) -> None:
        """A worker died: retry what it held once, then record it."""
        self.restarts[w.kind] += 1
        log.warning("%s worker %d died (exit %s); restarting it", w.kind, w.index, w.proc.exitcode)
        held, w.task = w.task, None
        if w.kind == "decode":
            self._free_decode_slots(w)
            if held is not None and self.assembly.decode_lost(held):
                self.queue.appendleft(held)
        elif not w.ready:
            self.load_crashes[w.index] += 1
            if self.load_crashes[w.index] >= MAX_LOAD_CRASHES:
                raise SystemicFailure(f"detector replica {w.index} ({self.specs[w.index].replica.device}) died "
                                      f"{MAX_LOAD_CRASHES} times while loading its model (exit {w.proc.exitcode}): "
                                      "check the model and the device, then run the same command again; it resumes")
        elif held:
            self.assembly.frames_lost(held, ErrorKind.WORKER_CRASHED, REPLICA_CRASHED)
        w.replace()

    def _check_time_limits(self) -> None:
        now = time.monotonic()
        for w in self.decoders:
            limit = self.config.decode_timeout_s
            if w.task is not None and now - w.started > limit:
                task, w.task = w.task, None
                w.replace()  # first: the killed decoder can no longer write into its slots
                self._free_decode_slots(w)
                self.assembly.decode_failed(task, decode_timeout(task.path, limit))
        for w in self.replicas:
            limit = self.config.detect_timeout_s if w.ready else LOAD_TIMEOUT_S
            if now - w.started <= limit:
                continue
            if not w.ready:
                self._lost(w)
            elif w.task is not None:
                frames, w.task = w.task, None
                log.warning("detector replica %d held a batch for over %g s; restarting it", w.index, limit)
                self.restarts["replica"] += 1
                w.replace()  # first: its frames' slots may be reused once it is gone
                self.assembly.frames_lost(frames, ErrorKind.TIMEOUT, DETECT_TIMEOUT.format(limit=limit))

    def _receive(self, w: WorkerProcess, msg: Any) -> None:
        if isinstance(msg, ReplicaReady):
            w.ready = True
            if all(r.ready for r in self.replicas) and self.ready_at is None:
                self.ready_at = time.monotonic()
            log.debug("replica %d ready on %s (pid %d) after %.1f s", w.index, msg.device, msg.pid, msg.load_s)
            return
        if isinstance(msg, ReplicaDown):
            raise SystemicFailure(msg.message)
        task, w.task = w.task, None
        if w.kind == "decode":
            self.decode_tasks[w.index] += 1
        if isinstance(msg, Decoded):
            self.largest_frame = max([self.largest_frame, *(image.nbytes for image in msg.video.images)])
            self._free_decode_slots(w, msg.video.images)
            self.assembly.decoded(task, msg.video)
        elif isinstance(msg, DecodeFailed):
            self._free_decode_slots(w)
            self.assembly.decode_failed(task, msg.failure)
        elif isinstance(msg, Detected):
            self.batch_sizes[w.index][msg.model] = msg.batch_size
            self.busy_s += msg.busy_s
            self.counters.add(msg.counters)
            self.batches.append(len(task))
            self.assembly.detected(task, msg.results)

    # ---- main loop ---------------------------------------------------------
    def place(self, rows: Iterator[Row], collector: Collector) -> Iterator[SampleOutcome]:
        self.started = time.monotonic()
        self._open_pool()
        pool = self.pool.ref() if self.pool is not None else None
        decode_args = (self.op, self.setup.limits, self.faults, self.plan.decoder_threads, pool)
        preload_for(self.specs)
        self.decoders = [WorkerProcess("decode", i, decode_worker, decode_args) for i in range(self.plan.decoders)]
        self.replicas = [WorkerProcess("replica", i, replica_worker, (spec, self.faults, pool), ready=False)
                         for i, spec in enumerate(self.specs)]
        more = True
        while True:
            if more:
                more = self._open_samples(rows)
            yield from self.assembly.outcomes()
            if not more and self.assembly.open_samples == 0:
                return
            decoding_done = not more and not self.queue and all(w.task is None for w in self.decoders)
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
            self._check_time_limits()
            self.queue.extend(self.assembly.tasks())  # a long video's pieces, once it is probed

    def report(self) -> ExecutorReport:
        return ExecutorReport(
            detector=DetectorReport.of(self.op.detector, self.counters, replicas=tuple(s.replica for s in self.specs),
                                       batch_size=self.plan.batch_size),
            workers=LocalWorkers(
                decoders=self.plan.decoders, replicas=len(self.specs), restarts=LocalRestarts(**self.restarts),
                replica_busy_s=round(self.busy_s, 3), batches=len(self.batches),
                mean_batch=round(sum(self.batches) / max(1, len(self.batches)), 2),
                frame_transport=self.frames_note, decode_tasks=list(self.decode_tasks),
                ready_s=round((self.ready_at or self.started) - self.started, 3)),
        )

    def close(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        for w in self.decoders + self.replicas:
            w.ask_stop()
        deadline = time.monotonic() + 10
        for w in self.decoders + self.replicas:
            w.join(deadline)
        if self.pool is not None:
            self.pool.close()
