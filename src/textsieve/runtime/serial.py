"""One process, one device: decode, detect and decide each sample in turn.

The reference executor, and the simplest placement of the shared flow: the
parallel ones must give the same outputs. Time limits are signals here
(:func:`~textsieve.runtime.flow.deadline`): a hung decode becomes
``timeout``, a hung detector call is retried once, as in the other
executors. A crash of this process is a crash of the run: the same command
resumes it.
"""

from __future__ import annotations

import logging
import time

from ..calibration import Calibration
from ..config import RunConfig
from ..data.dataset import dataset_base, read_rows
from ..errors import ConfigError
from ..resources.planner import Plan
from .collector import Collector
from .faults import Faults
from .flow import ReplicaCounters, SampleAssembly, decode_here, detect_here
from .planning import plan_for, replica_specs
from .steps import limits_of

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def run_serial(config: RunConfig, plan: Plan | None = None, calibration: Calibration | None = None,
               restart: bool = False, retry_errors: bool = False, faults: Faults | None = None) -> dict:
    """Run the whole dataset on the plan's first replica; returns the summary
    (also written to summary.json)."""
    config.require_io()
    if plan is None:
        _, plan = plan_for(config)
    if not plan.ok:
        raise ConfigError(plan.error or "the plan found no device to run on")
    spec = replica_specs(config, plan)[0]
    faults = faults or Faults.from_env()
    replicas = spec.replicas(faults)
    op = config.filter
    limits = limits_of(config)
    assembly = SampleAssembly(op, dataset_base(config.dataset), calibration)
    with Collector(config, plan, "serial", restart=restart, retry_errors=retry_errors) as collector:
        for row in read_rows(config.dataset):
            if row.index in collector.done:
                continue
            t0 = time.perf_counter()
            pending = assembly.open(row)
            while pending:
                task = pending.pop(0)
                if assembly.wants(task):  # else an earlier video of the sample failed
                    assembly.deliver(task, decode_here(task, op, limits, faults, config.decode_timeout_s))
                pending += assembly.tasks()  # a long video's pieces, once it is probed
            t1 = time.perf_counter()
            detect_here(assembly, replicas, config.detect_timeout_s)
            collector.summary.time("decode", t1 - t0)
            collector.summary.time("detect", time.perf_counter() - t1)
            for outcome in assembly.outcomes():
                collector.add(outcome)
        counters = ReplicaCounters()
        for replica in replicas.values():
            counters.add(replica.counters)
        return collector.finish(detector={"name": op.detector, "device": spec.replica.device,
                                          "batch_size": plan.batch_size, **counters.to_json()})
