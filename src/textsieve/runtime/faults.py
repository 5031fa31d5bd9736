"""Fault injection, for tests and for reproducing incidents.

``Faults`` names the detector calls that raise a simulated out-of-memory,
hang or kill their replica, the videos whose frames make the detector
raise, the videos on which a decoder dies or hangs, and a delay added to
every detector call. Every executor
applies the same faults at the same points (the shared sample flow), so one
conformance suite checks all of them. ``TEXTSIEVE_FAULTS`` (JSON) sets them
for a run started from the command line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

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

    @classmethod
    def from_json(cls, data: dict) -> "Faults":
        return cls(**{k: v if k in ("once_dir", "slow_detect_s") else tuple(v) for k, v in data.items()})

    @classmethod
    def from_env(cls) -> "Faults":
        raw = os.environ.get(ENV)
        return cls.from_json(json.loads(raw)) if raw else cls()

    def to_json(self) -> dict:
        return asdict(self)
