"""One process, one device: decode, detect and decide each sample in turn.

The reference executor: the parallel ones must give the same outputs.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ..config import RunConfig
from ..data.dataset import read_rows
from ..detect import registry
from ..errors import ConfigError, ErrorKind, VideoError
from ..outcome import SampleOutcome, VideoStats
from ..report.summary import SummaryBuilder
from ..resources.planner import Plan
from .collector import Collector
from .planning import detector_spec, plan_for
from .batching import BatchSizer, detect_with_backoff
from .steps import Detect, SampleJob, decode, error_outcome, judge, limits_of, prepare, video_stats

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def run_serial(config: RunConfig, plan: Plan | None = None, make_detector: Callable[[str], Detect] | None = None,
               restart: bool = False) -> dict:
    """Run the whole dataset on the plan's first replica; returns the summary
    (also written to summary.json)."""
    config.require_io()
    if plan is None:
        _, plan = plan_for(config)
    if not plan.ok:
        raise ConfigError(plan.error or "the plan found no device to run on")
    replica = plan.replicas[0]
    device = replica.device
    if make_detector is None:
        name, params = detector_spec(config)
        key = registry.prepare(name, **params)

        def make_detector(dev: str) -> Detect:
            return registry.get(key, dev, replica)

    detector: Detect | None = None
    op = config.filter
    limits = limits_of(config)
    base_dir = str(config.dataset.parent.resolve())
    collector = Collector(config, plan, "serial", restart=restart)
    sizer = BatchSizer(plan.batch_size)
    for row in read_rows(config.dataset):
        if row.index in collector.done:
            continue
        job = prepare(row, op, base_dir)
        if isinstance(job, SampleJob):
            if detector is None and job.unique:
                detector = make_detector(device)
            job = _judge_job(job, detector, config, sizer, limits, collector.summary)
        collector.add(job)
    return collector.finish(detector={"name": config.filter.detector, "device": device, "batch_size": plan.batch_size})


def _judge_job(job: SampleJob, detector: Detect | None, config: RunConfig, sizer: BatchSizer, limits,
               summary: SummaryBuilder) -> SampleOutcome:
    stats: dict[str, VideoStats] = {}
    for path in job.unique:
        try:
            t0 = time.perf_counter()
            sampled = decode(path, config.filter, limits)
            t1 = time.perf_counter()
            try:
                detections = detect_with_backoff(sampled.images, detector, sizer)
            except Exception as exc:  # a detector failure on one video must not end the run
                raise VideoError(ErrorKind.DETECTOR_ERROR, f"{path}: detector failed: {exc!r}", path) from exc
            summary.time("decode", t1 - t0)
            summary.time("detect", time.perf_counter() - t1)
            stats[path] = video_stats(sampled, detections, config.filter)
        except VideoError as exc:
            return error_outcome(job.row, exc)
    return judge(job, stats, config.filter)
