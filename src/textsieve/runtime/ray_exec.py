"""The Ray executor: the same recipe on a cluster, with Ray Data.

Pipeline: read tasks stream the dataset's splits (data/sources.py; the
driver holds one number per split, never the rows), skipping samples the
run has done, as units of work (a row with videos alone, rows with nothing
to decode by the thousand) -> a streaming repartition into small blocks ->
decode tasks (``num_cpus=1``, within the decode time limit) -> detector
actors in an ``ActorPoolStrategy`` pool with ``num_gpus = 1/k`` run the
shared flow (:class:`~textsieve.runtime.flow.SampleAssembly` and
:class:`~textsieve.runtime.flow.DetectorReplica`) -> with
``export_shard_size`` write tasks commit shards -> the driver streams small
outcome records into the same collector as the local executor (outputs or
the shards' manifest, journal, resume, the failure-streak guard, summary).

Planning is per node: a task pinned to every alive node takes that node's
inventory there (NVML on the node, never the driver's), the planner runs
per node, and nodes are grouped by k (replicas per GPU). Each group is its
own actor pool, pinned to its nodes by node-id labels, fed a share of the
samples proportional to its replicas. Fractions are always exactly 1/k:
other fractions pack badly across nodes. Ray sets CUDA_VISIBLE_DEVICES in
each actor; nothing touches CUDA in the driver. CPU actors ask for fewer
logical CPUs than they use threads, so that the 1-CPU tasks always fit
beside them (see :func:`cpu_actor_cpus`: a 2-core machine otherwise waits
for ever).
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import pickle
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from rich.console import Console

from ..calibration import calibration_from_json
from ..config import OcrFilter, RunConfig
from ..data.dataset import Row
from ..data.shards import ShardWriter
from ..data.sources import Split, count, count_selected, read, resolve
from ..errors import ConfigError, ErrorKind, Failure, SystemicFailure
from ..outcome import SampleOutcome
from ..report.summary import (ActorPlacement, DetectorReport, ExecutorReport, NodeReport, NodeResources, PoolReport,
                              RayDetail, RayRestarts, RayWorkers)
from ..report.typed import parse
from ..resources.inventory import Inventory, machine_inventory
from ..resources.planner import Plan, Replica
from ..video.frames import Limits, SampledVideo
from .collector import Collector
from .faults import Faults
from .flow import (DECODER_CRASHED, DETECT_TIMEOUT, REPLICA_CRASHED, DecodeTask, ReplicaCounters, ReplicaSpec, SampleAssembly,
                   decode_here, decode_video)
from .lifecycle import Executor, RunSetup, Written
from .planning import model_specs, narrow_to_device, plan_for
from .shm import FramePool, pool_size
from .steps import SampleJob, prepare
from .workers import (LOAD_TIMEOUT_S, MAX_LOAD_CRASHES, TIMED_OUT, Detected, DetectRequest, ReplicaDown, ReplicaReady, WorkerProcess, preload_for,
                      replica_worker)

log = logging.getLogger(__name__)


@dataclass
class NodePlan:
    node_id: str
    address: str
    inventory: Inventory
    plan: Plan
    declared_gpus: float = 0.0  # the GPUs the node's raylet offers Ray (what it can place actors on)


@dataclass
class Pool:
    """Detector actors sharing one GPU fraction, on the nodes listed."""

    k: int  # replicas per GPU; 0 for a CPU pool
    size: int  # actors
    nodes: list[str]
    threads: int
    memory_bytes: int | None = None  # GPU memory each actor may hold: the smallest share in the pool
    actor_cpus: float = 0.0  # logical CPUs each actor asks Ray for (0 for GPU actors)
    reserve_bytes: int = 0  # GPU memory kept free: the largest reserve among the pool's GPUs

    @property
    def num_gpus(self) -> float:
        return 1.0 / self.k if self.k else 0.0


def cpu_actor_cpus(cores: float, actors: int, threads: int) -> float:
    """Logical CPUs a CPU actor asks for, so that the pipeline's two 1-CPU
    tasks still fit on its node: a decode task, and the streaming repartition
    that cuts a split into decode-sized blocks (one task for a whole split:
    long-lived, and paused by backpressure while it holds its CPU). Reading
    and writing ask for none. Otherwise the stages can wait on each other for
    ever (100,000 rows on 2 cores did). The actor still runs ``threads``
    threads: Ray's CPUs are bookkeeping, and decoding is a small share of CPU
    detection time."""
    spare = max(0.0, cores - 2.0)
    return round(min(float(threads), spare / max(1, actors)), 3)


def pools_from_plans(node_plans: list[NodePlan]) -> list[Pool]:
    """Group nodes by replicas per GPU. On a node whose GPUs were planned
    unequal replicas (one half full, say), k is the smallest non-zero count:
    Ray places actors by GPU count, not memory, so every GPU it can use must
    hold k replicas within its budget. A GPU planned at zero should be hidden
    from that node's raylet (``CUDA_VISIBLE_DEVICES`` at ``ray start``)."""
    groups: dict[tuple[int, int], Pool] = {}
    for node in node_plans:
        p = node.plan
        if not p.ok or not p.replicas:
            continue
        if p.device_kind == "gpu":
            used = [g.replicas for g in p.gpus if g.replicas]
            k = min(used)
            size = k * len(used)
            threads = 1
            share = min(g.budget // k for g in p.gpus if g.replicas)
            reserve = max(g.reserve for g in p.gpus if g.replicas)
            cpus = 0.0
        else:
            k, size, threads, share = 0, len(p.replicas), p.replicas[0].threads, None
            cpus = cpu_actor_cpus(node.inventory.cpu_cores, size, threads)
            reserve = 0
        pool = groups.setdefault((k, threads), Pool(k, 0, [], threads, share, cpus, reserve))
        if share is not None:
            pool.memory_bytes = min(pool.memory_bytes or share, share)
            pool.reserve_bytes = max(pool.reserve_bytes, reserve)
        if not k:
            pool.actor_cpus = min(pool.actor_cpus, cpus)
        pool.size += size
        pool.nodes.append(node.node_id)
    return sorted(groups.values(), key=lambda pool: (-pool.k, -pool.size))


def pool_bounds(weights: list[int]) -> list[tuple[int, int]]:
    """Each pool's share of the indices: index i goes to the pool whose
    [lo, hi) holds i mod sum(weights), so rows are dealt in proportion to the
    pools' actors, deterministically, without the driver seeing them."""
    return [(sum(weights[:j]), sum(weights[:j + 1])) for j in range(len(weights))]


# a node's own simulated GPUs (rehearsing a cluster of unequal nodes, and the
# tests): set in the environment of that node's `ray start`
NODE_SIMULATE_ENV = "TEXTSIEVE_SIMULATE_GPUS"


def _inventory_on_node(simulate: str | None) -> Inventory:
    return machine_inventory(simulate=os.environ.get(NODE_SIMULATE_ENV) or simulate)


def plan_cluster(config: RunConfig) -> list[NodePlan]:
    """Inventory every alive node on that node, then plan it. With
    ``--device cuda:N`` only the nodes that have GPU N take part, each with
    that GPU alone; none having it is refused before any work."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0)(_inventory_on_node)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(config.simulate_gpus)
            for n in nodes]
    plans, refused = [], []
    for node, inventory in zip(nodes, ray.get(refs)):
        address = node.get("NodeManagerAddress", "?")
        try:
            inventory = narrow_to_device(inventory, config.device)
        except ConfigError as exc:
            refused.append(f"{address}: {exc}")
            continue
        plans.append(NodePlan(node["NodeID"], address, inventory, plan_for(config, inventory)[1],
                              float(node.get("Resources", {}).get("GPU", 0))))
    if not plans:
        raise ConfigError(f"--device {config.device}: no node of the cluster has it ({'; '.join(refused)})")
    for why in refused:
        log.info("node left out: %s", why)
    return plans


def check_placeable(node_plans: list[NodePlan]) -> None:
    """Ray places an actor asking for a GPU only on a node whose raylet
    declares GPUs: a plan that uses more GPUs than its node declares (GPUs
    simulated with --simulate-gpus on a cluster that offers none, or a
    raylet started with fewer) would wait for ever. Refused, saying what to do."""
    for node in node_plans:
        used = sum(1 for g in node.plan.gpus if g.replicas) if node.plan.device_kind == "gpu" else 0
        if used > node.declared_gpus:
            raise ConfigError(
                f"Ray node {node.address}: its plan uses {used} GPU(s) but its raylet declares "
                f"{node.declared_gpus:g}, so Ray could never place the detector actors there. Start that node with "
                f"`ray start --num-gpus {used}` (with --simulate-gpus too, to rehearse a plan: the replicas then "
                "run on the CPU), or run without --simulate-gpus")


# ---- Ray Data stages --------------------------------------------------------

@dataclass
class DecodedRow:
    """What a decode task hands the detector actors: the row, and each of its
    videos decoded or failed (decoding stops at a sample's first failure)."""

    row: Row
    videos: dict[str, SampledVideo | Failure] = field(default_factory=dict)


@dataclass
class Stopped:
    """An actor that cannot run its detector says so instead of failing samples."""

    message: str


def _count(split: Split) -> int:
    return count(split)


# rows with nothing to decode (no videos, a bad row) travel this many to a unit
SETTLED_PER_UNIT = 1024


def _read_split(item: dict[str, Any], done: list[tuple[int, int]], lo: int, hi: int, modulus: int,
                op: OcrFilter, base_dir: str) -> Iterator[dict]:
    """Read task: a split's rows that this pool judges (index mod ``modulus``
    in [lo, hi)) and the run has not done yet (``done``: sorted index ranges),
    as units of work: a row with videos alone (it becomes a decode task of its
    own, so decoding spreads over the cluster), rows with nothing to decode
    together (a Ray task per row would cost far more than the rows: 16 rows/s
    on 2 cores)."""
    settled: list[Row] = []
    for row in read(pickle.loads(item["split"]), item["first"]):
        if lo <= row.index % modulus < hi and not _in_ranges(done, row.index):
            job = prepare(row, op, base_dir)
            if isinstance(job, SampleJob) and any(_decodable(path) for path in job.unique):
                yield {"unit": pickle.dumps([row])}
            else:
                settled.append(row)
                if len(settled) == SETTLED_PER_UNIT:
                    yield {"unit": pickle.dumps(settled)}
                    settled = []
    if settled:
        yield {"unit": pickle.dumps(settled)}


def _decodable(path: str) -> bool:
    """Whether a video can get past the open: a local file that is missing or
    empty fails before any decoding (missing_file, empty_file), so its row
    travels with the settled ones instead of costing a Ray task (and a
    crash-count round trip) of its own. URLs are not probed here: a request
    per row in the read task would cost what it saves."""
    if "://" in path:
        return True
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


def _in_ranges(ranges: list[tuple[int, int]], index: int) -> bool:
    i = bisect.bisect_right(ranges, (index, math.inf)) - 1
    return i >= 0 and ranges[i][0] <= index < ranges[i][1]


def _decode_unit(item: dict[str, Any], op: OcrFilter, limits: Limits, base_dir: str, faults_json: dict,
                 timeout_s: float, attempts: Any) -> dict[str, Any]:
    """CPU task: a unit of rows in, each with its videos' sampled frames (or
    failures), pickled."""
    decode = Faults.from_json(faults_json).decoder(decode_video)
    return {"payload": pickle.dumps([_decode_row(row, op, limits, base_dir, decode, timeout_s, attempts)
                                     for row in pickle.loads(item["unit"])])}


def _decode_row(row: Row, op: OcrFilter, limits: Limits, base_dir: str, decode: Callable[..., SampledVideo],
                timeout_s: float, attempts: Any) -> DecodedRow:
    import ray

    decoded = DecodedRow(row)
    job = prepare(row, op, base_dir)
    if isinstance(job, SampleJob):
        for path in job.unique:
            key = (row.index, path)
            counted = _decodable(path)  # one that fails at the open cannot crash a decoder: no count kept
            if counted and ray.get(attempts.begin.remote(key)) >= 2:
                # the task died on this video twice (Ray retried it): record it, as the local executor does
                result: SampledVideo | Failure = Failure(ErrorKind.WORKER_CRASHED, f"{path}: {DECODER_CRASHED}", path)
            else:
                result = decode_here(DecodeTask(row.index, path), op, limits, timeout_s, decode)
            if counted:
                attempts.end.remote(key)
            decoded.videos[path] = result
            if isinstance(result, Failure):
                break
    return decoded


class DecodeAttempts:
    """A small actor counting, per video, the decodes that began and never
    ended: a decode task that dies (FFmpeg crashing on a file) is retried by
    Ray, and the video that killed it twice becomes a ``worker_crashed``
    record instead of failing the whole run. Holds only unfinished keys."""

    def __init__(self) -> None:
        self.open: Counter = Counter()

    def begin(self, key: tuple) -> int:
        died = self.open[key]
        self.open[key] += 1
        return died

    def end(self, key: tuple) -> None:
        del self.open[key]


class PlacementLog:
    """A small actor where every detector actor says where it runs."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def add(self, entry: dict) -> None:
        self.entries.append(entry)

    def get(self) -> list[dict]:
        return self.entries


@dataclass(frozen=True)
class StageSpec:
    """What one pool's detector actors need, built once by the driver and
    shipped to each actor (the calibration as JSON: its file need not exist
    on the actor's node)."""

    op: OcrFilter
    base_dir: str
    replica: ReplicaSpec
    simulated: bool  # declared GPUs with no device behind them: replicas run on the CPU
    detect_timeout_s: float
    reserve_bytes: int  # GPU memory the monitor keeps free
    slot_bytes: int  # one frame at the planned frame size, in shared memory
    calibration: dict | None
    faults: dict


class DetectStage:
    """Detector actor: the shared assembly here, and the replica in a child
    process (the local executor's own worker), so that a replica that hangs
    or dies is stopped and its frames retried exactly as on one machine.
    Ray runs this actor's calls on a thread of its own, where no signal can
    interrupt a hung call: a process can always be killed. Its GPU is the
    one Ray assigned (the child inherits CUDA_VISIBLE_DEVICES), watched
    through NVML while it runs."""

    def __init__(self, stage: StageSpec, placement_log) -> None:
        import ray

        from .monitor import ResourceMonitor, nvml_query

        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        # Ray set CUDA_VISIBLE_DEVICES to the assigned GPU: it is cuda:0 here.
        # Declared (simulated) GPUs have no device behind them: the CPU runs the replica.
        self.device = "cuda:0" if gpu_ids and not stage.simulated else "cpu"
        spec = stage.replica
        if self.device == "cpu":
            spec = replace(spec, replica=Replica("cpu", None, spec.replica.threads))
        else:
            spec = spec.on(self.device)
        # the frames of a batch reach the replica through shared memory, not the pipe
        slots, _ = pool_size(2 * spec.batch_size * stage.slot_bytes, stage.slot_bytes, spec.batch_size)
        self.pool = FramePool.create(slots, stage.slot_bytes) if slots else None
        pool = self.pool.ref() if self.pool is not None else None
        preload_for([spec])
        self.replica = WorkerProcess("replica", 0, replica_worker, (spec, Faults.from_json(stage.faults), pool),
                                     ready=False)
        self.batch_sizes = {m.name: spec.batch_size for m in spec.models}
        self.counters = ReplicaCounters()
        self.restarts = 0
        # shipped by the driver: the calibration file need not exist on this node
        self.assembly = SampleAssembly(stage.op, stage.base_dir,
                                       calibration_from_json(stage.calibration) if stage.calibration else None)
        self.detect_timeout_s = stage.detect_timeout_s
        self.stopped = self._await_ready()
        # NVML in this actor sees its own GPU as index 0 (it honours CUDA_VISIBLE_DEVICES)
        self.monitor = ResourceMonitor(nvml_query if gpu_ids and not stage.simulated else None,
                                       {0: stage.reserve_bytes}).start()
        ctx = ray.get_runtime_context()
        self.where = {"node": ctx.get_node_id(), "gpu_ids": gpu_ids, "pid": os.getpid(), "device": self.device,
                      "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
        ray.get(placement_log.add.remote(self.where))

    def _await_ready(self) -> str | None:
        """None once the replica's model is loaded; else why it cannot be."""
        for _ in range(MAX_LOAD_CRASHES):
            msg = self.replica.receive(LOAD_TIMEOUT_S)
            if isinstance(msg, ReplicaReady):
                self.replica.ready = True
                return None
            if isinstance(msg, ReplicaDown):
                return msg.message
            self.replica.replace()
        return (f"the detector replica died or hung {MAX_LOAD_CRASHES} times while loading its model on {self.device}: "
                "check the model and the device, then run the same command again; it resumes")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        if self.stopped is None:
            for payload in batch["payload"]:
                decoded: DecodedRow
                for decoded in pickle.loads(payload):
                    for task in self.assembly.open(decoded.row):
                        if self.assembly.wants(task):
                            self.assembly.deliver(task, decoded.videos[task.path])
            self._detect_buffered()
        if self.stopped is not None:
            return {"outcome": [pickle.dumps(Stopped(self.stopped))], "actor": [pickle.dumps(self._report())]}
        outcomes = self.assembly.outcomes()
        return {"outcome": [pickle.dumps(o) for o in outcomes], "actor": [pickle.dumps(self._report())] * len(outcomes)}

    def _detect_buffered(self) -> None:
        while True:
            model, frames = self.assembly.take(self.batch_sizes.__getitem__, flush=True)
            if not frames:
                return
            images = [f.image for f in frames]
            slots = self.pool.acquire(len(frames)) if self.pool is not None else None
            if slots is not None:
                images = self.pool.put_all(slots, images)
            self.replica.send(frames, DetectRequest(0, model, [f.key for f in frames], images))
            msg = self.replica.receive(self.detect_timeout_s)
            self.replica.task = None
            if slots is not None:
                self.pool.release(slots)
            if isinstance(msg, Detected):
                self.batch_sizes[model] = msg.batch_size
                self.counters.add(msg.counters)
                self.assembly.detected(frames, msg.results)
                continue
            self.restarts += 1
            self.replica.replace()
            if msg == TIMED_OUT:
                self.assembly.frames_lost(frames, ErrorKind.TIMEOUT, DETECT_TIMEOUT.format(limit=self.detect_timeout_s))
            else:
                self.assembly.frames_lost(frames, ErrorKind.WORKER_CRASHED, REPLICA_CRASHED)
            self.stopped = self._await_ready()
            if self.stopped is not None:
                return

    def _report(self) -> dict:
        return {**self.where, "counters": self.counters.to_json(), "replica_restarts": self.restarts,
                "resources": self.monitor.report()}


def join_and_plan(config: RunConfig, console: Console) -> tuple[list[NodePlan], list[Pool]]:
    """Join (or start) the cluster, plan every node on the node, print
    each node's plan and the pools (`textsieve plan --executor ray` too)."""
    import ray

    from ..report.plan_table import render_plan

    if not ray.is_initialized():
        extra = {}
        if config.ray_address is None and config.simulate_gpus:
            # a local cluster of this machine shaped like the simulated one:
            # Ray offers the simulated GPUs, and the replicas run on the CPU
            extra["num_gpus"] = len(machine_inventory(simulate=config.simulate_gpus).gpus)
            console.print(f"--simulate-gpus: the local Ray instance declares {extra['num_gpus']} GPU(s) to "
                          "place actors as the plan says; the replicas run on the CPU (no GPU is used)")
        ray.init(address=config.ray_address, log_to_driver=False, include_dashboard=False, **extra)
    _quiet_ray_data()
    node_plans = plan_cluster(config)
    for node in node_plans:
        console.print(f"[bold]Ray node {node.address}[/bold] ({node.node_id[:12]})")
        render_plan(node.inventory, node.plan, console)
    check_placeable(node_plans)
    pools = pools_from_plans(node_plans)
    if not pools:
        raise ConfigError("no node of the cluster can run a detector replica: "
                          + "; ".join(f"{n.address}: {n.plan.error or n.plan.reasons[-1]}" for n in node_plans))
    for pool in pools:
        console.print(f"Ray pool: {pool.size} detector actor(s), {pool.num_gpus:g} GPU and "
                      f"{pool.actor_cpus:g} CPU each, {pool.threads} thread(s), on {len(pool.nodes)} node(s); "
                      "decode tasks 1 CPU each")
    return node_plans, pools


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, setup: RunSetup, console: Console | None = None):
        super().__init__(setup)
        self.config, self.calibration = setup.config, setup.calibration
        self.console = console or Console(stderr=True)
        self.node_plans: list[NodePlan] = []
        self.pools: list[Pool] = []
        self.reports: dict[int, dict] = {}
        self.placement_log: Any = None

    def prepare(self) -> int:
        """Plan the cluster and count the dataset where it lies: splits are
        counted in parallel by tasks; the driver holds one number per split,
        never the rows."""
        import ray

        self.node_plans, self.pools = join_and_plan(self.config, self.console)
        self.splits = resolve(self.config.dataset).splits
        counts = ray.get([ray.remote(num_cpus=0.5)(_count).remote(split) for split in self.splits])
        self.firsts = [sum(counts[:i]) for i in range(len(self.splits))]
        return sum(count_selected(split, first, n) for split, first, n in zip(self.splits, self.firsts, counts))

    def place(self, rows: Iterator[Row], collector: Collector) -> Iterator[Any]:
        """Read tasks read the rows where the data is (``rows`` is not
        consumed here); outcomes stream back to the driver."""
        import ray

        self.placement_log = ray.remote(num_cpus=0)(PlacementLog).remote()
        attempts = ray.remote(num_cpus=0)(DecodeAttempts).remote()
        done = collector.output.done_ranges()
        weights = [p.size for p in self.pools]
        datasets = [self._pool_dataset(pool, done, lo, hi, sum(weights), attempts)
                    for pool, (lo, hi) in zip(self.pools, pool_bounds(weights))]
        if not datasets:
            return
        merged = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
        config = self.config
        if config.sharded:
            # the workers write kept, dropped and stats shards; errors and
            # the shards' manifest entries come here
            merged = merged.map_batches(_write_shards, batch_size=_rows_per_shard(config.export_shard_size),
                                        fn_kwargs={"export_dir": str(config.export_dir), "fmt": config.export_type,
                                                   "shard_bytes": config.export_shard_size,
                                                   "kept": config.kept_shards}, num_cpus=0)
        for row in merged.iter_rows():
            item = pickle.loads(row["outcome"])
            report = pickle.loads(row["actor"])
            self.reports[report["pid"]] = report
            if isinstance(item, Stopped):
                raise SystemicFailure(item.message)
            yield item

    def _stage_spec(self, pool: Pool) -> StageSpec:
        config, setup = self.config, self.setup
        device = "cuda" if pool.k else "cpu"
        replica = ReplicaSpec(model_specs(config), Replica(device, None, max(1, pool.threads), pool.memory_bytes),
                              config.batch_size or (8 if pool.k else 1), config.cpu_fallback)
        width, height = setup.frame_size
        return StageSpec(op=setup.op, base_dir=setup.base_dir, replica=replica,
                         simulated=any(n.plan.simulated for n in self.node_plans),
                         detect_timeout_s=config.detect_timeout_s, reserve_bytes=pool.reserve_bytes,
                         slot_bytes=width * height * 3,
                         calibration=self.calibration.to_json() if self.calibration else None,
                         faults=setup.faults.to_json())

    def _pool_dataset(self, pool: Pool, done, lo: int, hi: int, modulus: int, attempts) -> Any:
        """Read, decode and detect the pool's share of the rows: rows are
        dealt to pools by index, in proportion to their actors."""
        import ray

        setup, config, op = self.setup, self.config, self.setup.op
        stage = self._stage_spec(pool)
        ds = ray.data.from_items([{"split": pickle.dumps(split), "first": first}
                                  for split, first in zip(self.splits, self.firsts)],
                                 override_num_blocks=len(self.splits))
        # reading and writing ask Ray for no CPU (I/O; see cpu_actor_cpus)
        ds = ds.flat_map(_read_split, fn_kwargs={"done": done, "lo": lo, "hi": hi, "modulus": modulus,
                                                 "op": op, "base_dir": setup.base_dir}, num_cpus=0)
        # a few units per decode task, whatever the size of the splits
        ds = ds.repartition(target_num_rows_per_block=max(1, pool.size))
        ds = ds.map(_decode_unit, fn_kwargs={"op": op, "limits": setup.limits, "base_dir": setup.base_dir,
                                            "faults_json": stage.faults, "timeout_s": config.decode_timeout_s,
                                            "attempts": attempts},
                    num_cpus=1)
        return ds.map_batches(
            DetectStage,
            fn_constructor_kwargs={"stage": stage, "placement_log": self.placement_log},
            compute=ray.data.ActorPoolStrategy(size=pool.size),
            batch_size=max(1, math.ceil(stage.replica.batch_size / max(1, op.frame_sample_num))),
            num_gpus=pool.num_gpus,
            num_cpus=pool.actor_cpus,
            # pinned to the pool's nodes; Ray Data restarts an actor lost with
            # its node and retries its batch by default
            label_selector={"ray.io/node-id": f"in({','.join(pool.nodes)})"},
        )

    def report(self) -> ExecutorReport:
        import ray

        placements = ray.get(self.placement_log.get.remote()) if self.placement_log is not None else []
        reports = self.reports.values()
        # the actors' placements and reports cross Ray as plain dicts: typed here
        detail = RayDetail(pools=[PoolReport(**asdict(p), num_gpus=p.num_gpus) for p in self.pools],
                           nodes=[NodeReport(n.node_id, n.address, n.plan) for n in self.node_plans],
                           actors=parse(list[ActorPlacement], placements),
                           actors_per_gpu=dict(Counter(",".join(a["gpu_ids"]) or "cpu" for a in placements)))
        return ExecutorReport(
            executor_detail=detail,
            detector=DetectorReport.of(self.setup.op.detector, ReplicaCounters(**_sum_counters(reports))),
            workers=RayWorkers(RayRestarts(replica=sum(r["replica_restarts"] for r in reports))),
            node_resources=parse(dict[str, NodeResources], _node_resources(reports)),
        )


def _rows_per_shard(shard_bytes: int) -> int:
    # rows per write task, sized for small rows (a caption-only row and its
    # stats: ~128 bytes): a batch of large rows is flushed at shard_bytes
    # within the task anyway, and the end of the run compacts the shards to
    # size (Manifest.compact); too few rows a task would cost a file and a
    # task each (8,594 files for 200,000 caption rows at 1 KiB a row)
    return max(16, min(100_000, shard_bytes // 128))


def _write_shards(batch: dict[str, np.ndarray], export_dir: str, fmt: str, shard_bytes: int,
                  kept: str) -> dict[str, list]:
    """Write task: judged outcomes into shards (committed by the driver's
    manifest when it receives their entry); errors and Stopped go on."""
    writer = ShardWriter(Path(export_dir), fmt, shard_bytes, outputs=("kept", "dropped", "stats"), kept=kept)
    out, actor = [], batch["actor"][-1] if len(batch["actor"]) else pickle.dumps({})
    entries = []
    for payload in batch["outcome"]:
        item = pickle.loads(payload)
        if isinstance(item, SampleOutcome) and item.status != "error":
            entry = writer.add(item)
            entries += [entry] if entry else []
            light = replace(item, sample=None, videos=[replace(v, frame_boxes=None) for v in item.videos])
            out.append(pickle.dumps(Written(light)))
        else:
            out.append(payload)
    entry = writer.flush()
    entries += [entry] if entry else []
    out += [pickle.dumps(e) for e in entries]
    return {"outcome": out, "actor": [actor] * len(out)}


def _quiet_ray_data() -> None:
    """Ray Data logs its progress every few seconds where stderr is no
    terminal; textsieve's own progress line says the same once."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = sys.stderr.isatty()
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("ray.data").setLevel(logging.WARNING)


def _sum_counters(reports) -> dict:
    total: Counter = Counter()
    for report in reports:
        total.update(report["counters"])
    return dict(total)


def _node_resources(reports) -> dict:
    """Each node's GPU peaks and reserve breaches, as its actors saw them."""
    nodes: dict[str, dict] = {}
    for report in reports:
        node = nodes.setdefault(report["node"], {"gpus": {}, "peak_actor_rss_bytes": 0})
        resources = report["resources"]
        node["peak_actor_rss_bytes"] = max(node["peak_actor_rss_bytes"], resources["peak_host_rss_bytes"])
        for gpu in resources["gpus"].values():
            key = gpu.get("name") or "?"
            seen = node["gpus"].setdefault(",".join(report["gpu_ids"]) or key, dict(gpu))
            seen["peak_used_bytes"] = max(seen["peak_used_bytes"], gpu["peak_used_bytes"])
            seen["came_within_reserve"] = seen["came_within_reserve"] or gpu["came_within_reserve"]
    return nodes
