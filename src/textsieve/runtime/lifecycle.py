"""The run around the sample flow, one owner for every executor.

A run is: resolve the settings once (:class:`RunSetup`), let the executor
get ready (a plan, a cluster), open the :class:`Collector` (lock, journal,
resume), feed it what the executor yields for the samples not yet done,
and finish (final files, summary). :class:`Executor` writes that sequence
once; serial, local and Ray only say where decoding and detection run
(:meth:`Executor.place`), as datatrove's executors only place ranks.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

from ..calibration import Calibration
from ..config import OcrFilter, RunConfig
from ..data.dataset import Row, dataset_base, read_rows
from ..data.shards import ShardEntry
from ..outcome import SampleOutcome
from ..report.summary import ExecutorReport, RunSummary
from ..resources.planner import Plan
from ..video.frames import Limits
from .collector import Collector
from .faults import Faults
from .flow import ReplicaSpec
from .planning import detect_frame_size, plan_for, replica_specs
from .steps import limits_of


@dataclass(frozen=True)
class RunSetup:
    """What a run needs, derived from the config once: executors read it and
    derive nothing again. ``plan`` and ``specs`` are this machine's; a Ray
    run plans each node on the node (``plan`` None)."""

    config: RunConfig
    op: OcrFilter
    limits: Limits
    base_dir: str  # what relative video paths resolve against
    frame_size: tuple[int, int]  # the largest frame the detector sees
    calibration: Calibration | None = None
    plan: Plan | None = None
    specs: tuple[ReplicaSpec, ...] = ()
    restart: bool = False
    retry_errors: bool = False
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def resolve(cls, config: RunConfig, plan: Plan | None = None, calibration: Calibration | None = None,
                restart: bool = False, retry_errors: bool = False, faults: Faults | None = None) -> "RunSetup":
        """The setup of ``config`` (its plan made here for serial and local
        when not given; faults from the environment when not given)."""
        config.require_io()
        if plan is None and config.executor != "ray":
            _, plan = plan_for(config)
        return cls(config, config.filter, limits_of(config), dataset_base(config.dataset), detect_frame_size(config),
                   calibration, plan, tuple(replica_specs(config, plan)) if plan is not None and plan.ok else (),
                   restart, retry_errors, faults if faults is not None else Faults.from_env())


class Executor(ABC):
    """One run's lifecycle; subclasses place the work."""

    name: ClassVar[str]

    def __init__(self, setup: RunSetup):
        self.setup = setup

    def run(self) -> RunSummary:
        """Run the dataset; returns the summary (also written to summary.json).
        Raises ConfigError before any work, AlreadyComplete for a finished
        run, RunStopped when the run stopped part-way (resumable)."""
        started = time.monotonic()
        total = self.prepare()
        setup = self.setup
        with Collector(setup.config, setup.plan, self.name, restart=setup.restart, retry_errors=setup.retry_errors,
                       total=total) as collector:
            pending = (row for row in read_rows(setup.config.dataset) if row.index not in collector.done)
            try:
                for item in self.place(pending, collector):
                    _accept(collector, item)
            finally:
                self.close()
            return collector.finish(self.report(), wall_s=round(time.monotonic() - started, 3))

    def prepare(self) -> int | None:
        """Get ready before the export folder is locked; returns the dataset's
        row count when the executor counted it (else the collector counts)."""
        return None

    @abstractmethod
    def place(self, rows: Iterator[Row], collector: Collector) -> Iterator[Any]:
        """Judge ``rows`` (the samples not yet done, read lazily) wherever this
        executor runs them, yielding outcomes as they complete: a
        :class:`SampleOutcome` to write, a :class:`Written` outcome that a
        worker already wrote into a shard, or a :class:`ShardEntry` to commit.
        ``collector`` is for timings and the done ranges only."""

    def close(self) -> None:
        """Stop what :meth:`place` started; runs however the run ends."""

    def report(self) -> ExecutorReport:
        """This executor's sections of the summary (its detector's counters,
        its workers, where a cluster placed them)."""
        return ExecutorReport()


@dataclass
class Written:
    """An outcome a worker wrote into a shard: the collector counts it and
    shows it to the failure-streak guard (no sample, no boxes: small)."""

    outcome: SampleOutcome


def _accept(collector: Collector, item: Any) -> None:
    if isinstance(item, ShardEntry):
        collector.add_shards(item)
    elif isinstance(item, Written):
        collector.add(item.outcome, written=True)
    else:
        collector.add(item)
