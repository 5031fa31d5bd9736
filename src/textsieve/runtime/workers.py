"""The worker processes of the local executor, and the messages they
exchange with the supervisor (dataclasses, one per kind of message).

Both kinds of worker hold one task at a time and talk over one pipe: a
request in, a result out. They are forks of a fork server (multiprocessing's
``forkserver`` method): a clean process started once, with no thread, CUDA
context or model of the parent's. For a run whose replicas use the CPU, the
server imports the detector's heavy modules first (torch and EasyOCR: 5 s of
CPU each time a process imports them), so each replica, and each replacement
of one that died or hung, starts without importing them again. For a GPU
replica it imports no detector module: the replica pins its GPU through
``CUDA_VISIBLE_DEVICES`` before torch or ONNX Runtime loads, as it always did.
This module imports no torch at the top.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable

import numpy as np
import psutil

from ..config import OcrFilter
from ..errors import Failure, SystemicFailure, VideoError
from ..video.frames import Limits, SampledVideo
from .faults import Faults
from .flow import DecodeTask, FrameKey, FrameResult, ReplicaCounters, ReplicaSpec, decode_video
from .shm import PoolRef, SharedFrame

CTX = mp.get_context("forkserver")
# a replica that dies this many times before its model is even loaded will not load
MAX_LOAD_CRASHES = 3
# loading reads weights and may create a CUDA context: slow on a busy machine, but a
# replica still loading after this long is stuck
LOAD_TIMEOUT_S = 600.0


@dataclass
class DecodeRequest:
    task_id: int
    task: DecodeTask
    slots: list[int] = field(default_factory=list)  # shared-memory slots to write the frames into


@dataclass
class Decoded:
    task_id: int
    video: SampledVideo  # its images: SharedFrame handles, or arrays for frames larger than a slot


@dataclass
class DecodeFailed:
    task_id: int
    failure: Failure


@dataclass
class DetectRequest:
    task_id: int
    model: str
    keys: list[FrameKey]
    images: list[np.ndarray | SharedFrame]


@dataclass
class Detected:
    task_id: int
    model: str
    results: list[FrameResult]
    batch_size: int  # the batch this model now handles, after any out-of-memory backoff
    busy_s: float
    counters: ReplicaCounters  # this request's share


@dataclass
class ReplicaReady:
    device: str
    pid: int
    load_s: float


@dataclass
class ReplicaDown:
    """The model cannot be built: the run must stop, not fail samples."""

    message: str


def preload_for(specs: Iterable[ReplicaSpec]) -> None:
    """Say what the fork server imports before its first fork: this module
    (every worker runs it), and the heavy modules of the models that the
    replicas in ``specs`` run on the CPU. Only the first start of the server
    in a process counts (later runs in the same process fork from it as it
    is). Nothing of a GPU replica's model is imported there: importing torch
    is harmless to a fork, but anything that initialised CUDA in the server
    would break every GPU replica forked from it."""
    modules = [__name__]
    for model in (m for spec in specs if spec.replica.device == "cpu" for m in spec.models):
        modules += [m for m in model.detector().imports if m not in modules]
    CTX.set_forkserver_preload(modules)


def _worker_main(environ: dict[str, str], supervisor: int, target: Callable[..., None], *args: Any) -> None:
    """A worker's start: the supervisor's environment as it is now (a fork
    of the server would otherwise have the server's, from when it started),
    tied to the supervisor's life, then ``target``."""
    os.environ.clear()
    os.environ.update(environ)
    _die_with(supervisor)
    target(*args)


def _die_with(supervisor: int) -> None:
    """This process is killed when the supervisor ends, however it ends, so
    that a killed supervisor leaves no replica holding a GPU (a hung worker
    would never notice its pipe closing). The parent's death signal is not
    enough: the parent is the fork server, which lives while any of its forks
    does. A thread waits on the supervisor itself. The parent's death signal
    is still set: a fork server that dies takes its workers with it, as the
    supervisor, which sees all of their sentinels close, then assumes."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    threading.Thread(target=_kill_self_after, args=(supervisor,), name="textsieve-lifeline", daemon=True).start()
    # Ctrl-C reaches the whole process group: the supervisor alone handles it
    # (commits, stops the workers, says how to resume), so a worker ignores it
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _kill_self_after(supervisor: int) -> None:
    try:
        pidfd = os.pidfd_open(supervisor)  # readable once that process has ended (Linux 5.3+)
        select.select([pidfd], [], [])
    except (AttributeError, OSError):  # no pidfd here: look twice a second
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(supervisor)
            while process.is_running():
                time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


def decode_worker(conn: Connection, op: OcrFilter, limits: Limits, faults: Faults, threads: int = 1,
                  pool: PoolRef | None = None) -> None:
    frames = pool.attach() if pool is not None else None
    decode = faults.decoder(decode_video)
    while (request := conn.recv()) is not None:
        try:
            video = decode(request.task, op, limits, threads)
        except VideoError as exc:
            conn.send(DecodeFailed(request.task_id, exc.failure))
            continue
        if frames is not None:
            video.images = frames.put_all(request.slots, video.images)
        conn.send(Decoded(request.task_id, video))


def replica_worker(conn: Connection, spec: ReplicaSpec, faults: Faults, pool: PoolRef | None = None) -> None:
    frames = pool.attach() if pool is not None else None
    if spec.visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.visible  # before torch or ONNX Runtime loads
    # the child sees only its GPU: it is device 0 here
    replicas = (spec.on("cuda:0") if spec.replica.device.startswith("cuda") else spec).replicas(faults)
    started = time.perf_counter()
    try:
        for replica in replicas.values():
            replica.load()
    except SystemicFailure as exc:
        conn.send(ReplicaDown(str(exc)))
        return
    conn.send(ReplicaReady(spec.replica.device, os.getpid(), time.perf_counter() - started))
    while (request := conn.recv()) is not None:
        replica = replicas[request.model]
        before = ReplicaCounters(**replica.counters.to_json())
        started = time.perf_counter()
        images = [frames.resolve(image) for image in request.images] if frames is not None else request.images
        results = replica.detect(request.keys, images)
        share = ReplicaCounters(**{k: v - getattr(before, k) for k, v in replica.counters.to_json().items()})
        conn.send(Detected(request.task_id, request.model, results, replica.sizer.current,
                           time.perf_counter() - started, share))
    for replica in replicas.values():
        replica.close()


class WorkerProcess:
    """A worker process as its supervisor sees it: what it holds, since
    when, and whether it is ready. ``replace`` kills it (if alive) and starts
    a fresh one with the same arguments: the supervisor's answer to a crash
    or a time limit. Used by the local executor for every worker, and by a
    Ray detector actor for its replica."""

    def __init__(self, kind: str, index: int, target: Callable[..., None], args: tuple, ready: bool = True):
        self.kind, self.index, self.target, self.args = kind, index, target, args
        self.needs_ready = not ready  # replicas say when their model is loaded
        self._next_id = 0
        self._start()

    def _start(self) -> None:
        parent, child = CTX.Pipe()
        self.proc = CTX.Process(target=_worker_main,
                                args=(dict(os.environ), os.getpid(), self.target, child, *self.args),
                                name=f"textsieve-{self.kind}-{self.index}", daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        self.task: Any = None  # DecodeTask for a decoder; list[Frame] for a replica
        self.started = time.monotonic()  # of the task held, or of the process while it loads
        self.ready = not self.needs_ready

    def send(self, task: Any, message: Any) -> None:
        self._next_id += 1
        message.task_id = self._next_id
        self.task, self.started = task, time.monotonic()
        self.conn.send(message)

    def replace(self) -> None:
        self.conn.close()
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self._start()

    def ask_stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass

    def join(self, deadline: float) -> None:
        """Wait for it to exit; kill it if it has not by ``deadline`` (monotonic)."""
        self.proc.join(max(0.1, deadline - time.monotonic()))
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(1)

    def receive(self, timeout: float | None) -> Any:
        """The next message; :data:`DIED` if the process ended, :data:`TIMED_OUT` if none came in time."""
        ready = wait([self.conn, self.proc.sentinel], timeout=timeout)
        if self.conn in ready:
            try:
                return self.conn.recv()
            except (EOFError, OSError):
                return DIED
        return DIED if ready else TIMED_OUT


DIED, TIMED_OUT = "died", "timed out"
