"""The Ray executor: the same recipe on a cluster, with Ray Data.

Pipeline: the driver reads the dataset (skipping samples the journal has
done) -> Ray Data decodes each sample's videos in CPU tasks (``num_cpus=1``)
-> detector actors in an ``ActorPoolStrategy`` pool with ``num_gpus = 1/k``
decide -> the driver streams the small outcome records into the same
collector as the local executor (outputs, journal, resume, summary).

Planning is per node: a task pinned to every alive node takes that node's
inventory there (NVML on the node, never the driver's), the planner runs
per node, and nodes are grouped by k (replicas per GPU). Each group is its
own actor pool, pinned to its nodes by node-id labels, fed a share of the
samples proportional to its replicas. Fractions are always exactly 1/k:
other fractions pack badly across nodes. Ray sets CUDA_VISIBLE_DEVICES in
each actor; nothing touches CUDA in the driver.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..calibration import load_calibration
from ..config import RunConfig
from ..data.dataset import read_rows
from ..errors import ConfigError, VideoError
from ..resources.inventory import Inventory
from ..resources.planner import Plan
from .collector import Collector
from .planning import detector_spec, plan_for
from .steps import SampleJob, decode, error_outcome, judge, limits_of, prepare, video_stats

log = logging.getLogger(__name__)


@dataclass
class NodePlan:
    node_id: str
    address: str
    inventory: Inventory
    plan: Plan


@dataclass
class Pool:
    """Detector actors sharing one GPU fraction, on the nodes listed."""

    k: int  # replicas per GPU; 0 for a CPU pool
    size: int  # actors
    nodes: list[str]
    threads: int
    memory_bytes: int | None = None  # GPU memory each actor may hold: the smallest share in the pool

    @property
    def num_gpus(self) -> float:
        return 1.0 / self.k if self.k else 0.0


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
        else:
            k, size, threads, share = 0, len(p.replicas), p.replicas[0].threads, None
        pool = groups.setdefault((k, threads), Pool(k, 0, [], threads, share))
        if share is not None:
            pool.memory_bytes = min(pool.memory_bytes or share, share)
        pool.size += size
        pool.nodes.append(node.node_id)
    return sorted(groups.values(), key=lambda pool: (-pool.k, -pool.size))


def split_by_weight(indices: list[int], weights: list[int]) -> list[list[int]]:
    """Deal indices to groups in proportion to their weights, deterministically."""
    shares: list[list[int]] = [[] for _ in weights]
    total = sum(weights)
    credit = [0.0] * len(weights)
    for index in indices:
        for g, w in enumerate(weights):
            credit[g] += w / total
        g = max(range(len(weights)), key=lambda i: (credit[i], -i))
        credit[g] -= 1.0
        shares[g].append(index)
    return shares


def _inventory_on_node(simulate: str | None) -> Inventory:
    from ..resources.inventory import machine_inventory

    return machine_inventory(simulate=simulate)


def plan_cluster(config: RunConfig) -> list[NodePlan]:
    """Inventory every alive node on that node, then plan it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0)(_inventory_on_node)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(config.simulate_gpus)
            for n in nodes]
    return [NodePlan(node["NodeID"], node.get("NodeManagerAddress", "?"), inventory, plan_for(config, inventory)[1])
            for node, inventory in zip(nodes, ray.get(refs))]


# ---- Ray Data stages --------------------------------------------------------

def _decode_row(row: dict[str, Any], op_json: dict, limits_json: dict, base_dir: str) -> dict[str, Any]:
    """CPU task: a dataset row in, the sample's decoded frames (or its outcome) out, pickled."""
    from ..config import OcrFilter
    from ..data.dataset import Row
    from ..video.frames import Limits

    op, limits = OcrFilter.model_construct(**op_json), Limits(**limits_json)
    data = json.loads(row["row"])
    r = Row(int(row["index"]), data.get("sample"), data.get("error"))
    job = prepare(r, op, base_dir)
    if not isinstance(job, SampleJob):
        return {"index": r.index, "payload": pickle.dumps(("outcome", job))}
    sampled = {}
    for path in job.unique:
        try:
            sampled[path] = decode(path, op, limits)
        except VideoError as exc:
            return {"index": r.index, "payload": pickle.dumps(("outcome", error_outcome(r, exc)))}
    return {"index": r.index, "payload": pickle.dumps(("job", job, sampled))}


class PlacementLog:
    """A small actor where every detector actor says where it runs."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def add(self, entry: dict) -> None:
        self.entries.append(entry)

    def get(self) -> list[dict]:
        return self.entries


class DetectStage:
    """Detector actor: builds its model once, on the GPU Ray assigned (or the CPU)."""

    def __init__(self, op_json: dict, batch_size: int, threads: int, memory_bytes: int | None, model: tuple[str, dict],
                 cpu_fallback: bool, placement_log, faults_json: dict, calibration: dict | None = None) -> None:
        import ray
        import torch

        from ..config import OcrFilter
        from ..detect import registry
        from ..resources.planner import Replica
        from .batching import BatchSizer
        from .workers import Faults

        from ..calibration import calibration_from_json

        self.op = OcrFilter.model_construct(**op_json)
        # shipped by the driver: the calibration file need not exist on this node
        self.calibration = calibration_from_json(calibration) if calibration else None
        gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        # Ray set CUDA_VISIBLE_DEVICES to the assigned GPU: it is cuda:0 here.
        self.device = "cuda:0" if gpu_ids and torch.cuda.is_available() else "cpu"
        name, params = model
        key = registry.prepare(name, **params)
        self.model = registry.get(key, self.device, Replica(self.device, None, max(1, threads), memory_bytes))
        self.fallback = (lambda images: registry.get(key, "cpu")(images)) if self.device != "cpu" and cpu_fallback else None
        self.sizer = BatchSizer(batch_size)
        self.faults = Faults.from_json(faults_json)
        self.calls = 0
        ctx = ray.get_runtime_context()
        self.where = {"node": ctx.get_node_id(), "gpu_ids": gpu_ids, "pid": os.getpid(), "device": self.device,
                      "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
        ray.get(placement_log.add.remote(self.where))

    def _detect(self, images):
        self.calls += 1
        if self.calls in self.faults.crash_replica_calls and self.faults.fire(f"ray-replica-crash-{self.calls}"):
            os._exit(71)
        return self.model(images)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from .batching import detect_with_backoff

        items = [pickle.loads(p) for p in batch["payload"]]
        frames = []  # (item, path, slot, image)
        for n, item in enumerate(items):
            if item[0] == "job":
                for path, sampled in item[2].items():
                    frames += [(n, path, slot, image) for slot, image in enumerate(sampled.images)]
        results: dict[tuple, Any] = {}
        by_shape: dict[tuple, list] = {}
        for f in frames:
            by_shape.setdefault(f[3].shape, []).append(f)
        for group in by_shape.values():
            found = detect_with_backoff([f[3] for f in group], self._detect, self.sizer, self.fallback)
            results.update({(f[0], f[1], f[2]): r for f, r in zip(group, found)})
        outcomes = []
        for n, item in enumerate(items):
            if item[0] == "outcome":
                outcomes.append(item[1])
                continue
            _, job, sampled = item
            try:
                stats = {path: video_stats(video, [results[(n, path, slot)] for slot in range(len(video.images))], self.op,
                                            self.calibration)
                         for path, video in sampled.items()}
            except VideoError as exc:
                outcomes.append(error_outcome(job.row, exc))
            else:
                outcomes.append(judge(job, stats, self.op))
        return {"index": [o.index for o in outcomes], "outcome": [pickle.dumps(o) for o in outcomes],
                "actor": [json.dumps(self.where)] * len(outcomes)}


class RayExecutor:
    def __init__(self, config: RunConfig, restart: bool = False, address: str | None = None):
        self.config, self.restart, self.address = config, restart, address

    def run(self) -> dict:
        import ray
        from ray.util.scheduling_strategies import In, NodeLabelSchedulingStrategy

        from .workers import Faults

        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False)
        started = time.monotonic()
        node_plans = plan_cluster(self.config)
        pools = pools_from_plans(node_plans)
        if not pools:
            raise ConfigError("no node of the cluster can run a detector replica: "
                              + "; ".join(f"{n.address}: {n.plan.error or n.plan.reasons[-1]}" for n in node_plans))
        collector = Collector(self.config, None, "ray", restart=self.restart)
        op_json = self.config.filter.model_dump()
        limits_json = asdict(limits_of(self.config))
        base_dir = str(self.config.dataset.parent.resolve())
        items = []
        for row in read_rows(self.config.dataset):
            if row.index not in collector.done:
                items.append({"index": row.index,
                              "row": json.dumps({"sample": row.sample, "error": row.error}, default=str)})
        placement_log = ray.remote(num_cpus=0)(PlacementLog).remote()
        faults = Faults.from_env()
        op = self.config.filter
        calibration = load_calibration(op.calibration).to_json() if op.calibration else None
        shares = split_by_weight(list(range(len(items))), [p.size for p in pools])
        datasets = []
        for pool, share in zip(pools, shares):
            if not share:
                continue
            ds = ray.data.from_items([items[i] for i in share], override_num_blocks=max(1, min(len(share), 4 * pool.size)))
            ds = ds.map(_decode_row, fn_kwargs={"op_json": op_json, "limits_json": limits_json, "base_dir": base_dir},
                        num_cpus=1)
            batch = self.config.batch_size or (8 if pool.k else 1)
            ds = ds.map_batches(
                DetectStage,
                fn_constructor_kwargs={"op_json": op_json, "batch_size": batch, "threads": pool.threads,
                                       "memory_bytes": pool.memory_bytes, "model": detector_spec(self.config),
                                       "cpu_fallback": self.config.cpu_fallback, "calibration": calibration,
                                       "placement_log": placement_log, "faults_json": faults.to_json()},
                compute=ray.data.ActorPoolStrategy(size=pool.size),
                batch_size=max(1, batch // max(1, self.config.filter.frame_sample_num)),
                num_gpus=pool.num_gpus,
                num_cpus=0 if pool.k else pool.threads,
                max_restarts=3,
                max_task_retries=2,
                scheduling_strategy=NodeLabelSchedulingStrategy({"ray.io/node-id": In(*pool.nodes)}),
            )
            datasets.append(ds)
        if datasets:
            merged = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
            for row in merged.iter_rows():
                collector.add(pickle.loads(row["outcome"]))
        placements = ray.get(placement_log.get.remote())
        return collector.finish(
            executor_detail={"pools": [asdict(p) | {"num_gpus": p.num_gpus} for p in pools],
                             "nodes": [{"node": n.node_id, "address": n.address, "plan": n.plan.to_json()} for n in node_plans],
                             "actors": placements,
                             "actors_per_gpu": dict(Counter(",".join(a["gpu_ids"]) or "cpu" for a in placements))},
            wall_s=round(time.monotonic() - started, 3),
        )
