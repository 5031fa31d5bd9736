"""One process, one device: decode, detect and decide each sample in turn.

The reference executor, and the simplest placement of the shared flow: the
parallel ones must give the same outputs. Time limits are signals here
(:func:`~textsieve.runtime.flow.within`): a hung decode becomes
``timeout``, a hung detector call is retried once, as in the other
executors. A crash of this process is a crash of the run: the same command
resumes it.
"""

from __future__ import annotations

import time
from typing import Iterator

from ..data.dataset import Row
from ..errors import ConfigError
from ..outcome import SampleOutcome
from ..report.summary import DetectorReport, ExecutorReport
from .collector import Collector
from .flow import ReplicaCounters, SampleAssembly, decode_here, decode_video, detect_here
from .lifecycle import Executor, RunSetup


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


class SerialExecutor(Executor):
    """Everything in this process, on the plan's first replica."""

    name = "serial"

    def __init__(self, setup: RunSetup):
        super().__init__(setup)
        if setup.plan is None or not setup.plan.ok:
            raise ConfigError((setup.plan.error if setup.plan else None) or "the plan found no device to run on")
        self.spec = setup.specs[0]
        self.replicas = self.spec.replicas(setup.faults)

    def place(self, rows: Iterator[Row], collector: Collector) -> Iterator[SampleOutcome]:
        setup = self.setup
        config, op = setup.config, setup.op
        assembly = SampleAssembly(op, setup.base_dir, setup.calibration)
        decode = setup.faults.decoder(decode_video)
        for row in rows:
            t0 = time.perf_counter()
            pending = assembly.open(row)
            while pending:
                task = pending.pop(0)
                if assembly.wants(task):  # else an earlier video of the sample failed
                    assembly.deliver(task, decode_here(task, op, setup.limits, config.decode_timeout_s, decode))
                pending += assembly.tasks()  # a long video's pieces, once it is probed
            t1 = time.perf_counter()
            detect_here(assembly, self.replicas, config.detect_timeout_s)
            collector.summary.time("decode", t1 - t0)
            collector.summary.time("detect", time.perf_counter() - t1)
            yield from assembly.outcomes()

    def report(self) -> ExecutorReport:
        counters = ReplicaCounters()
        for replica in self.replicas.values():
            counters.add(replica.counters)
        return ExecutorReport(detector=DetectorReport.of(self.setup.op.detector, counters, device=self.spec.replica.device,
                                                         batch_size=self.setup.plan.batch_size))
