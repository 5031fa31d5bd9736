"""The run summary (``summary.json``): counts that add up to the input,
timings, throughput, the plan, resource peaks and each executor's numbers.

Typed and versioned, because other tools read it: the run writes a
:class:`RunSummary`; the report, ``textsieve decide`` and the CLI read it
back with :meth:`RunSummary.load`. Its JSON Schema is generated from these
classes (``python -m textsieve.report.schema``) into
``docs/schemas/summary.schema.json``; ``docs/schemas/README.md`` says what
each part means and when :data:`SCHEMA_VERSION` changes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ..data.export import write_json_atomic
from ..errors import ConfigError
from ..outcome import SampleOutcome
from ..resources.planner import Plan, Replica
from .typed import DOCUMENTED, parse, to_json, when_set

# Raised when a key is removed or renamed, or a value changes type or
# meaning; keys added beside the others leave it as it is (readers ignore
# keys they do not know). See docs/schemas/README.md.
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Counts:
    """Outcomes over the whole run (resumed sessions included)."""

    __pydantic_config__ = DOCUMENTED
    input: int
    """Samples in the dataset."""
    kept: int
    dropped: int
    error: int
    """Samples that could not be judged (errors.jsonl)."""
    adds_up: bool
    """kept + dropped + error == input."""

    @classmethod
    def of(cls, input: int, kept: int, dropped: int, error: int) -> "Counts":
        return cls(input, kept, dropped, error, kept + dropped + error == input)


@dataclass(frozen=True, slots=True)
class Session:
    """What this session (the last command, not the resumed ones) did."""

    __pydantic_config__ = DOCUMENTED
    samples: int
    videos_judged: int
    frames_detected: int
    frames_decoded: int
    wall_s: float
    """From the collector's start to the summary."""
    samples_per_s: float | None
    """None when no time passed."""
    videos_per_s: float | None
    timings_s: dict[str, float]
    """Seconds per stage, where the executor measured them (serial: decode, detect)."""


@dataclass(frozen=True, slots=True)
class GpuPeak:
    """One GPU's memory as watched through NVML during the run."""

    __pydantic_config__ = DOCUMENTED
    name: str | None
    peak_used_bytes: int
    total_bytes: int | None
    came_within_reserve: bool
    """Its free memory fell below the plan's reserve at some point."""


@dataclass(frozen=True, slots=True)
class Resources:
    """Peaks watched where the collector runs (the supervisor's machine)."""

    __pydantic_config__ = DOCUMENTED
    peak_host_rss_bytes: int
    """This process and its children."""
    gpus: dict[str, GpuPeak]
    """By device index."""


@dataclass(frozen=True, slots=True)
class NodeResources:
    """A Ray node's peaks, as its detector actors saw them."""

    __pydantic_config__ = DOCUMENTED
    gpus: dict[str, GpuPeak]
    """By the Ray GPU ids of the actor (or the GPU's name)."""
    peak_actor_rss_bytes: int


@dataclass(frozen=True, slots=True)
class CascadeShares:
    """Under ``detector: cascade``: which detector decided the videos."""

    __pydantic_config__ = DOCUMENTED
    videos: int
    decided_by: dict[str, int]
    """Videos per deciding detector (ppocr, craft)."""
    share_sent_to_craft: float
    why_sent: dict[str, int]
    """Videos CRAFT re-judged, per reason."""


@dataclass(frozen=True, slots=True)
class RatioSource:
    """Which detector produced the ratios, and on what scale they are."""

    __pydantic_config__ = DOCUMENTED
    detector: str
    max_side: int | None
    scale: str
    """In words: CRAFT's own, or mapped by a calibration, or a fast detector's own."""
    outside_calibration_videos: int
    """Videos whose raw ratios lay past the range the calibration was fitted on."""
    precision: str | None = when_set()
    """CRAFT's arithmetic when not Data-Juicer's fp32: bf16 or fp16 (torch autocast)."""
    calibration: str | None = when_set()
    calibration_fingerprint: str | None = when_set()
    calibration_held_out: dict[str, float] | None = when_set()
    """A mapped fast detector's held-out decision agreement with CRAFT, per threshold range of the calibration."""
    cascade_held_out: dict[str, float] | None = when_set()
    """The cascade's held-out decision agreement with CRAFT, per threshold range of the calibration."""
    cascade: CascadeShares | None = when_set()


@dataclass(frozen=True, slots=True)
class DetectorReport:
    """The detector's work this session, summed over its replicas."""

    __pydantic_config__ = DOCUMENTED
    name: str
    device: str | None = when_set()
    """Serial runs: the one replica's device."""
    replicas: tuple[Replica, ...] | None = when_set()
    """Local runs: the replicas as planned."""
    batch_size: int | None = when_set()
    """Serial and local runs (a Ray run's pools have their own)."""
    calls: int = 0
    """Forward passes asked of the model."""
    oom_backoffs: int = 0
    """Out-of-memory errors met (batch halved or frame sent on)."""
    cpu_fallback_frames: int = 0
    failed_frames: int = 0
    """Frames returned as a failure."""

    @classmethod
    def of(cls, name: str, counters: Any, **where: Any) -> "DetectorReport":
        """``counters``: a :class:`~textsieve.runtime.flow.ReplicaCounters`."""
        return cls(name, calls=counters.calls, oom_backoffs=counters.oom_backoffs,
                   cpu_fallback_frames=counters.cpu_fallback_frames, failed_frames=counters.failed_frames, **where)


@dataclass(frozen=True, slots=True)
class LocalRestarts:
    decode: int
    replica: int


@dataclass(frozen=True, slots=True)
class LocalWorkers:
    """The local executor's worker processes."""

    __pydantic_config__ = DOCUMENTED
    decoders: int
    replicas: int
    restarts: LocalRestarts
    replica_busy_s: float
    """Seconds the replicas spent detecting."""
    batches: int
    mean_batch: float
    frame_transport: str
    """Shared-memory slots or pipes, in words."""
    decode_tasks: list[int]
    """Tasks each decoder finished."""
    ready_s: float
    """Seconds until the workers were ready."""


@dataclass(frozen=True, slots=True)
class RayRestarts:
    replica: int


@dataclass(frozen=True, slots=True)
class RayWorkers:
    """The Ray executor's detector actors."""

    restarts: RayRestarts


@dataclass(frozen=True, slots=True)
class PoolReport:
    """Detector actors sharing one GPU fraction (runtime/ray_exec.py's Pool)."""

    __pydantic_config__ = DOCUMENTED
    k: int
    """Replicas per GPU; 0 for a CPU pool."""
    size: int
    nodes: list[str]
    threads: int
    memory_bytes: int | None
    actor_cpus: float
    reserve_bytes: int
    num_gpus: float
    """What each actor asks Ray for: 1/k."""


@dataclass(frozen=True, slots=True)
class NodeReport:
    """A Ray node and the plan made on it."""

    node: str
    address: str
    plan: Plan


@dataclass(frozen=True, slots=True)
class ActorPlacement:
    """Where a detector actor ran, as it said itself."""

    node: str
    gpu_ids: list[str]
    pid: int
    device: str
    cuda_visible_devices: str | None


@dataclass(frozen=True, slots=True)
class RayDetail:
    __pydantic_config__ = DOCUMENTED
    pools: list[PoolReport]
    nodes: list[NodeReport]
    actors: list[ActorPlacement]
    actors_per_gpu: dict[str, int]
    """Actors per Ray GPU id set ("cpu" for CPU actors)."""


@dataclass(frozen=True, slots=True)
class ShardedOutputs:
    """A sharded export: how many shards each output has."""

    shards: dict[str, int]


@dataclass(frozen=True, slots=True)
class DataJuicerOutputs:
    """An export_path naming a file: where Data-Juicer's files went."""

    kept: str
    stats: str


@dataclass(frozen=True, slots=True)
class Redecision:
    """One ``textsieve decide`` on this run's stats."""

    min_area_ratio: float
    max_area_ratio: float
    any_or_all: str
    kind_limits: dict[str, float] | None = when_set()
    """The per-kind maxima it applied, where the run judged kinds (docs/kinds.md)."""


@dataclass(frozen=True, slots=True)
class ExecutorReport:
    """An executor's own sections of the summary (:meth:`Executor.report`)."""

    detector: DetectorReport | None = None
    workers: LocalWorkers | RayWorkers | None = None
    executor_detail: RayDetail | None = None
    node_resources: dict[str, NodeResources] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """``summary.json``: one finished run. (Keyword-only, so that the fields
    keep the file's key order whatever their defaults.)"""

    __pydantic_config__ = DOCUMENTED
    schema_version: int = SCHEMA_VERSION
    """This file's layout (docs/schemas/README.md). Files written before it existed have the keys of version 1
    and read as 1."""
    textsieve_version: str
    finished_at: str
    """ISO 8601, UTC, to the second."""
    counts: Counts
    errors_by_kind: dict[str, int]
    """Error records per kind, over the whole run."""
    this_session: Session
    executor: Literal["serial", "local", "ray"]
    resumed_with_done: int
    """Samples already done when this session started."""
    retried_errors: int
    """Samples with transient errors judged again (--retry-errors)."""
    outputs: ShardedOutputs | DataJuicerOutputs | None = when_set()
    resources: Resources
    plan: Plan | None = when_set()
    """Serial and local runs: the plan of this machine (a Ray run's are in executor_detail.nodes)."""
    config: dict[str, Any]
    """The run's settings as textsieve's RunConfig holds them, secrets masked."""
    ratios: RatioSource
    pid: int
    """The process that wrote the summary."""
    executor_detail: RayDetail | None = when_set()
    detector: DetectorReport | None = when_set()
    workers: LocalWorkers | RayWorkers | None = when_set()
    node_resources: dict[str, NodeResources] | None = when_set()
    wall_s: float
    """The executor's whole run, planning and start-up included."""
    redecided: tuple[Redecision, ...] | None = when_set()
    """The thresholds of each ``textsieve decide`` since the run, oldest first."""

    def to_json(self) -> dict:
        return to_json(self)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    @property
    def op(self) -> dict:
        """The filter's settings the run used (thresholds, detector, ...)."""
        return self.config["filter"]

    @classmethod
    def from_json(cls, data: Any, where: Path | str) -> "RunSummary":
        """A summary from its parsed JSON; a ConfigError naming ``where``
        and the field when it is not one this textsieve can read."""
        version = data.get("schema_version", 1) if isinstance(data, dict) else None
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise ConfigError(f"{where} was written by a newer textsieve (schema_version {version}; this one reads "
                              f"up to {SCHEMA_VERSION}): upgrade textsieve to read it")
        try:
            return parse(cls, data)
        except ValueError as exc:
            raise ConfigError(f"{where} is not a summary this textsieve can read ({exc}): restore it, or run the "
                              "same `textsieve run` command with --restart to write it again") from None

    @classmethod
    def load(cls, path: Path) -> "RunSummary":
        """Read ``summary.json``: the one way the report, ``decide`` and the
        CLI read a run's summary."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} cannot be read ({exc}): restore it, or run the same `textsieve run` command "
                              "with --restart to write it again") from None
        return cls.from_json(data, path)


def session_rows(session: Session) -> list[tuple[str, Any]]:
    """The session's numbers in order, without the per-stage timings."""
    return [(f.name, getattr(session, f.name)) for f in fields(session) if f.name != "timings_s"]


def finished_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SummaryBuilder:
    """This session's numbers, counted as outcomes arrive."""

    def __init__(self) -> None:
        self.started = time.time()
        self.status: Counter[str] = Counter()
        self.error_kinds: Counter[str] = Counter()
        self.videos = 0
        self.frames = 0
        self.decoded = 0
        self.timings: Counter[str] = Counter()

    def add(self, outcome: SampleOutcome) -> None:
        self.status[outcome.status] += 1
        if outcome.error:
            self.error_kinds[outcome.error["kind"]] += 1
        self.videos += len(outcome.videos)
        self.frames += sum(len(v.frame_ratios) for v in outcome.videos)
        self.decoded += sum(v.decoded_frames for v in outcome.videos)

    def time(self, stage: str, seconds: float) -> None:
        self.timings[stage] += seconds

    @property
    def processed(self) -> int:
        return sum(self.status.values())

    def session(self) -> Session:
        """Throughput and timings of this session, up to now."""
        wall = time.time() - self.started
        return Session(
            samples=self.processed,
            videos_judged=self.videos,
            frames_detected=self.frames,
            frames_decoded=self.decoded,
            wall_s=round(wall, 3),
            samples_per_s=round(self.processed / wall, 4) if wall > 0 else None,
            videos_per_s=round(self.videos / wall, 4) if wall > 0 else None,
            timings_s={k: round(v, 3) for k, v in sorted(self.timings.items())},
        )
