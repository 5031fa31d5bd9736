"""The worker processes of the local executor.

Both kinds talk to the supervisor over one pipe: a task in, a result out.
They start by the ``spawn`` method, so nothing of the parent (threads, a CUDA
context, a model) is inherited. This module imports no torch at the top: a
replica pins its GPU through ``CUDA_VISIBLE_DEVICES`` before torch loads.

Fault injection (tests, and reproducing incidents): ``Faults`` names detector
calls that raise a simulated out-of-memory, calls at which a replica dies,
and videos on which a decoder dies or hangs. ``TEXTSIEVE_FAULTS`` (JSON)
sets it for a run started from the command line.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection

from ..errors import ErrorKind, VideoError
from ..resources.planner import Replica
from .batching import BatchSizer, SimulatedOOM, detect_with_backoff


@dataclass(frozen=True)
class Faults:
    oom_calls: tuple[int, ...] = ()  # 1-based detector calls, per replica process
    crash_replica_calls: tuple[int, ...] = ()  # replica exits abruptly at these calls
    crash_decode_on: tuple[str, ...] = ()  # decoder exits abruptly on paths containing these
    hang_decode_on: tuple[str, ...] = ()  # decoder hangs on paths containing these
    once_dir: str | None = None  # if set, each fault fires once per run (marker files here)

    def fire(self, name: str) -> bool:
        if self.once_dir is None:
            return True
        try:
            os.close(os.open(os.path.join(self.once_dir, name), os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            return False

    @classmethod
    def from_json(cls, data: dict) -> "Faults":
        return cls(**{k: v if k == "once_dir" else tuple(v) for k, v in data.items()})

    @classmethod
    def from_env(cls) -> "Faults":
        raw = os.environ.get("TEXTSIEVE_FAULTS")
        return cls.from_json(json.loads(raw)) if raw else cls()

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ReplicaSpec:
    replica: Replica  # as planned: device cuda:N or cpu, threads, memory cap
    visible: str | None  # CUDA_VISIBLE_DEVICES for the child (the GPU's UUID or index)
    batch_size: int
    model_name: str
    model_params: dict = field(default_factory=dict)
    cpu_fallback: bool = True


def decode_worker(conn: Connection, op_json: dict, limits_json: dict, faults: Faults, threads: int = 1) -> None:
    from ..config import OcrFilter
    from ..video.frames import Limits
    from .steps import decode

    op, limits = OcrFilter.model_construct(**op_json), Limits(**limits_json)
    while True:
        task = conn.recv()
        if task is None:
            return
        task_id, path = task
        if any(s in path for s in faults.crash_decode_on) and faults.fire(f"decode-crash-{path.replace('/', '_')}"):
            os._exit(70)
        if any(s in path for s in faults.hang_decode_on) and faults.fire(f"decode-hang-{path.replace('/', '_')}"):
            time.sleep(10**6)
        try:
            conn.send(("ok", task_id, decode(path, op, limits, threads)))
        except VideoError as exc:
            conn.send(("err", task_id, exc.record()))


def replica_worker(conn: Connection, spec: ReplicaSpec, faults: Faults) -> None:
    if spec.visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.visible  # before torch or ONNX Runtime loads
    from ..detect import registry

    # the child sees only its GPU: it is device 0 here
    device = "cuda:0" if spec.replica.device.startswith("cuda") else "cpu"
    replica = replace(spec.replica, device=device)
    key = registry.prepare(spec.model_name, **spec.model_params)
    sizer = BatchSizer(spec.batch_size)
    calls = 0

    def detect(images):
        nonlocal calls
        calls += 1
        if calls in faults.crash_replica_calls and faults.fire(f"replica-crash-{calls}"):
            os._exit(71)
        if calls in faults.oom_calls and faults.fire(f"oom-{calls}"):
            raise SimulatedOOM()
        return registry.get(key, device, replica)(images)  # built here, on first use

    def cpu_detect(images):
        return registry.get(key, "cpu")(images)

    fallback = cpu_detect if device != "cpu" and spec.cpu_fallback else None

    while True:
        task = conn.recv()
        if task is None:
            registry.release()
            return
        batch_id, images = task
        started = time.perf_counter()
        try:
            results = detect_with_backoff(images, detect, sizer, fallback, registry.free_device_cache)
        except Exception as exc:
            record = {"kind": ErrorKind.DETECTOR_ERROR.value, "message": f"detector failed: {exc!r}"}
            results = [record] * len(images)
        conn.send(("ok", batch_id, results, sizer.current, time.perf_counter() - started))
