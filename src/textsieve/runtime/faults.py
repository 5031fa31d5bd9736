"""Fault injection, for tests and for reproducing incidents.

The faults wrap what they disturb, from outside: ``Faults.decoder`` wraps
the decode function an executor uses and ``Faults.detector`` the model a
replica builds, so the production code has no test branch in it. With no
fault set, both return what they were given.

``Faults`` names the detector calls that raise a simulated out-of-memory,
hang or kill their replica, the videos whose frames make the detector
raise, the videos on which a decoder dies or hangs, and a delay added to
every detector call. Every executor
applies the same faults at the same points (the shared sample flow), so one
conformance suite checks all of them. ``TEXTSIEVE_FAULTS`` (JSON) sets them
for a run started from the command line.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from .batching import SimulatedOOM

D = TypeVar("D", bound=Callable[..., Any])
# a detector as a replica calls it: the frames' keys (``FrameKey``: path, ...) and their images
KeyedModel = Callable[[Sequence[Any], Sequence[np.ndarray]], list]

ENV = "TEXTSIEVE_FAULTS"


@dataclass(frozen=True)
class Faults:
    oom_calls: tuple[int, ...] = ()  # 1-based detector calls, per replica: simulated out-of-memory
    crash_replica_calls: tuple[int, ...] = ()  # the replica's process exits abruptly at these calls
    hang_replica_calls: tuple[int, ...] = ()  # the detector call never returns
    detector_error_on: tuple[str, ...] = ()  # the detector raises on frames of paths containing these
    crash_decode_on: tuple[str, ...] = ()  # the decoding process exits abruptly on paths containing these
    hang_decode_on: tuple[str, ...] = ()  # decoding hangs on paths containing these
    slow_detect_s: float = 0.0  # every detector call takes this much longer (a run slow enough to kill mid-way)
    once_dir: str | None = None  # if set, each fault fires once per run (marker files here)

    def fire(self, name: str) -> bool:
        """Whether a fault fires now; with ``once_dir``, only the first time."""
        if self.once_dir is None:
            return True
        try:
            os.close(os.open(os.path.join(self.once_dir, name.replace("/", "_")), os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            return False

    def on_path(self, patterns: tuple[str, ...], path: str, name: str) -> bool:
        return any(p in path for p in patterns) and self.fire(f"{name}-{path}")

    def decoder(self, decode: D) -> D:
        """``decode(task, ...)`` with the decoder faults around it: the
        process dies (as FFmpeg crashing would) or hangs on matching paths."""
        if not (self.crash_decode_on or self.hang_decode_on):
            return decode

        def faulty(task, *args, **kwargs):
            if self.on_path(self.crash_decode_on, task.label, "decode-crash"):
                os._exit(70)
            if self.on_path(self.hang_decode_on, task.label, "decode-hang"):
                time.sleep(10**6)
            return decode(task, *args, **kwargs)

        return faulty  # type: ignore[return-value]

    def detector(self, model: KeyedModel, scope: str = "") -> KeyedModel:
        """``model`` with the detector faults around it. Calls are counted
        from 1 per model, as ``ReplicaCounters.calls`` counts them; ``scope``
        tells a cascade's models apart in the once-only markers."""
        if not (self.oom_calls or self.crash_replica_calls or self.hang_replica_calls or self.slow_detect_s
                or self.detector_error_on):
            return model
        calls = itertools.count(1)

        def faulty(keys: Sequence[Any], images: Sequence[np.ndarray]) -> list:
            call = next(calls)
            if call in self.crash_replica_calls and self.fire(f"replica-crash-{scope}{call}"):
                os._exit(71)
            if call in self.hang_replica_calls and self.fire(f"replica-hang-{scope}{call}"):
                time.sleep(10**6)
            if call in self.oom_calls and self.fire(f"oom-{scope}{call}"):
                raise SimulatedOOM()
            if self.slow_detect_s:
                time.sleep(self.slow_detect_s)
            for key in keys:
                if self.on_path(self.detector_error_on, key.path, "detector-error"):
                    raise RuntimeError(f"injected detector error on {os.path.basename(key.path)}")
            return model(keys, images)

        return faulty

    @classmethod
    def from_json(cls, data: dict) -> "Faults":
        return cls(**{k: v if k in ("once_dir", "slow_detect_s") else tuple(v) for k, v in data.items()})

    @classmethod
    def from_env(cls) -> "Faults":
        raw = os.environ.get(ENV)
        return cls.from_json(json.loads(raw)) if raw else cls()

    def to_json(self) -> dict:
        return asdict(self)
