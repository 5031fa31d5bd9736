"""How many detector replicas go on which device, and how many decoders feed
them: a pure function of the inventory, the model's measured cost and the
user's limits, with the reason for every number.

Per GPU: ``budget = free - max(reserve_bytes, reserve_fraction * total)`` and
``replicas = min(max_replicas_per_gpu, floor(budget / per_replica))``. When
the user's ``np`` caps the total, replicas are placed one at a time, breadth
first over the GPUs that still have room for one, roomiest first: each GPU
holds only what its own budget fits (never round-robin over unequal GPUs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .inventory import GiB, Inventory

MiB = 1 << 20
GPU_BATCH = 8
# Measured on a 2-core CPU, CRAFT at 320x240: 0.19 s/frame one by one, 0.26 at
# batch 8; PP-OCR at 640x360: 0.029-0.035 s/frame at batch 1-8 (bench/RESULTS.md).
# Batches pay off on GPUs, not on CPUs.
CPU_BATCH = 1


@dataclass(frozen=True)
class ModelCost:
    """Memory one replica needs. ``gpu_bytes``: CUDA context + weights +
    activation peak at the planned batch and frame size; ``host_bytes``: the
    replica process's RAM (all of it for a CPU replica)."""

    model: str
    gpu_bytes: int
    host_bytes: int
    source: str  # "measured ..." or "declared default ..."


@dataclass(frozen=True)
class PlanLimits:
    reserve_bytes: int = 1 * GiB
    reserve_fraction: float = 0.05
    max_replicas_per_gpu: int = 2
    np: int | None = None  # Data-Juicer's process count: caps the detector replicas (not the decoders)
    allow_cpu_fallback: bool = True
    force_cpu: bool = False
    batch_size: int | None = None  # None: GPU_BATCH on a GPU, CPU_BATCH on a CPU
    decoder_bytes: int = 600 * MiB  # RAM per decode worker (a 4K frame set + decoder state)
    # of each decoder's RAM share, what its decoded frames may hold while they
    # wait for a replica (the supervisor's frame budget grows with the decoders)
    frames_per_decoder_bytes: int = 256 * MiB
    min_frame_buffer_bytes: int = 512 * MiB
    cpu_threads_per_replica: int = 4
    host_cores_per_gpu_replica: float = 0.5  # feeding and post-processing on the host


@dataclass
class GpuPlan:
    index: int
    uuid: str
    name: str
    total: int
    free: int
    reserve: int
    budget: int
    fits: int  # replicas the budget holds
    replicas: int  # replicas placed
    memory_fraction: float  # for torch.cuda.set_per_process_memory_fraction, per replica
    reason: str


@dataclass
class Replica:
    device: str  # "cuda:N" or "cpu"
    memory_fraction: float | None  # of the device's total, GPU only
    threads: int  # CPU threads of the detector
    memory_bytes: int | None = None  # GPU memory this replica may hold, in all (ONNX Runtime's cap)


@dataclass
class Plan:
    ok: bool
    device_kind: str  # gpu | cpu | none
    replicas: list[Replica]
    decoders: int
    batch_size: int
    gpus: list[GpuPlan]
    cost: ModelCost
    reasons: list[str] = field(default_factory=list)
    error: str | None = None
    decoder_threads: int = 1  # FFmpeg threads per decoder
    simulated: bool = False  # planned on simulated GPUs: the replicas run on the CPU
    frame_buffer_bytes: int = 512 * MiB  # decoded frames waiting for a replica, at most

    def to_json(self) -> dict:
        return asdict(self)


def _fmt(n: int | float) -> str:
    return f"{n / GiB:.1f} GiB"


def plan(inventory: Inventory, cost: ModelCost, limits: PlanLimits = PlanLimits()) -> Plan:
    result = _plan(inventory, cost, limits)
    if inventory.source == "simulated" and result.device_kind == "gpu":
        result.simulated = True
        result.reasons.append(f"simulated GPUs: planned as if they existed; `run` executes these "
                              f"{len(result.replicas)} replica(s) on the CPU")
    return result


def _plan(inventory: Inventory, cost: ModelCost, limits: PlanLimits) -> Plan:
    reasons: list[str] = [f"per-replica cost: {_fmt(cost.gpu_bytes)} GPU, {_fmt(cost.host_bytes)} host ({cost.source})"]
    # np is how many copies of the model Data-Juicer would run: here it caps
    # the replicas. Decoders hold no model; they follow the cores and the RAM.
    np_cap = limits.np
    # every replica process also needs host RAM, and one decoder must fit beside them
    host_cap = max(0, (inventory.ram_available - limits.decoder_bytes) // max(1, cost.host_bytes))
    gpus: list[GpuPlan] = []
    if not limits.force_cpu:
        gpus = _plan_gpus(inventory, cost, limits, np_cap, int(host_cap))
    placed = sum(g.replicas for g in gpus)
    if placed:
        replicas = [
            Replica(f"cuda:{g.index}", g.memory_fraction, threads=1, memory_bytes=g.budget // g.replicas)
            for g in gpus for _ in range(g.replicas)
        ]
        decoders, why = _decoders(inventory, limits, replicas, cost)
        reasons.append(f"{placed} GPU replica(s) on {sum(1 for g in gpus if g.replicas)} GPU(s)")
        reasons.append(why)
        spare = inventory.cpu_cores - placed * limits.host_cores_per_gpu_replica
        threads = max(1, int(spare // decoders))
        reasons.append(f"{threads} FFmpeg thread(s) per decoder: the cores left shared among decoders")
        buffer, why = frame_buffer(decoders, limits)
        reasons.append(why)
        return Plan(True, "gpu", replicas, decoders, limits.batch_size or GPU_BATCH, gpus, cost, reasons,
                    decoder_threads=threads, frame_buffer_bytes=buffer)

    if limits.force_cpu:
        reasons.append("device is cpu: GPUs not used")
    elif inventory.gpus:
        reasons.append("no GPU has budget for one replica")
    else:
        reasons.append("no GPU visible")
    if not (limits.allow_cpu_fallback or limits.force_cpu):
        error = "nothing fits: " + "; ".join(f"GPU {g.index}: {g.reason}" for g in gpus) if gpus else "no GPU visible"
        return Plan(False, "none", [], 0, limits.batch_size or GPU_BATCH, gpus, cost, reasons,
                    error=error + " (allow the CPU fallback, lower the reserve, or free GPU memory)")
    return _plan_cpu(inventory, cost, limits, gpus, reasons)


def _plan_gpus(inventory: Inventory, cost: ModelCost, limits: PlanLimits, np_cap: int | None, host_cap: int) -> list[GpuPlan]:
    gpus = []
    for g in inventory.gpus:
        reserve = max(limits.reserve_bytes, int(limits.reserve_fraction * g.total))
        budget = g.free - reserve
        fits = max(0, budget // cost.gpu_bytes) if cost.gpu_bytes > 0 else 0
        gpus.append(GpuPlan(g.index, g.uuid, g.name, g.total, g.free, reserve, budget, int(fits), 0, 0.0, ""))
    caps = [min(limits.max_replicas_per_gpu, g.fits) for g in gpus]
    remaining = min(sum(caps), host_cap, sum(caps) if np_cap is None else np_cap)
    # Breadth first (replicas on distinct GPUs run in parallel), each GPU
    # only up to what its own budget holds, roomiest first: under an np cap
    # the replicas land on the GPUs with the most room.
    while remaining > 0:
        best = max(
            (i for i, g in enumerate(gpus) if g.replicas < caps[i]),
            key=lambda i: (-gpus[i].replicas, gpus[i].budget - gpus[i].replicas * cost.gpu_bytes, -i),
        )
        gpus[best].replicas += 1
        remaining -= 1
    for g, cap in zip(gpus, caps):
        share = g.budget // g.replicas if g.replicas else 0
        # rounded down: the caps of all replicas together stay within the budget
        g.memory_fraction = math.floor(share / g.total * 1e6) / 1e6 if g.replicas else 0.0
        if g.fits == 0:
            g.reason = f"budget {_fmt(g.budget)} (free {_fmt(g.free)} - reserve {_fmt(g.reserve)}) < one replica {_fmt(cost.gpu_bytes)}"
        elif g.replicas < cap:
            g.reason = (
                f"host RAM for {host_cap} replica process(es) caps the total; {g.fits} would fit"
                if np_cap is None or host_cap < np_cap
                else f"np={limits.np} caps the total; {g.fits} would fit"
            )
        elif g.replicas == limits.max_replicas_per_gpu and g.fits > g.replicas:
            g.reason = f"max_replicas_per_gpu={limits.max_replicas_per_gpu} (budget fits {g.fits})"
        else:
            g.reason = f"budget {_fmt(g.budget)} fits {g.fits} x {_fmt(cost.gpu_bytes)}"
    return gpus


def _decoders(inventory: Inventory, limits: PlanLimits, replicas: list[Replica], cost: ModelCost) -> tuple[int, str]:
    gpu_replicas = sum(1 for r in replicas if r.device != "cpu")
    cpu_threads = sum(r.threads for r in replicas if r.device == "cpu")
    host_cores = inventory.cpu_cores - gpu_replicas * limits.host_cores_per_gpu_replica - cpu_threads
    by_cpu = max(1, math.floor(host_cores))
    ram_left = inventory.ram_available - len(replicas) * cost.host_bytes
    by_ram = max(1, ram_left // limits.decoder_bytes)
    n = min(by_cpu, by_ram)
    why = f"decoders: {n} = min(cores left {by_cpu}, RAM left {_fmt(max(0, ram_left))} / {_fmt(limits.decoder_bytes)} = {by_ram})"
    return int(n), why


def frame_buffer(decoders: int, limits: PlanLimits) -> tuple[int, str]:
    """How many bytes of decoded frames may wait for the replicas: a share of
    each decoder's RAM, so that every decoder can have a video in flight (a
    fixed 512 MiB let one interval-sampled 1080p video, ~600 MB of frames,
    stop all the others)."""
    buffer = max(limits.min_frame_buffer_bytes, decoders * limits.frames_per_decoder_bytes)
    return buffer, (f"frames waiting for a replica: at most {_fmt(buffer)} = max({_fmt(limits.min_frame_buffer_bytes)}, "
                    f"{decoders} decoder(s) x {_fmt(limits.frames_per_decoder_bytes)}), within the decoders' RAM")


def _plan_cpu(inventory: Inventory, cost: ModelCost, limits: PlanLimits, gpus: list[GpuPlan], reasons: list[str]) -> Plan:
    cores = max(1, int(inventory.cpu_cores))
    # torch already spreads one forward pass over several cores: replicas only
    # help once there are more cores than one replica uses well
    by_cores = max(1, cores // limits.cpu_threads_per_replica)
    by_ram = max(1, (inventory.ram_available - limits.decoder_bytes) // max(1, cost.host_bytes))
    n = min(by_cores, by_ram)
    if limits.np is not None:
        n = min(n, limits.np)
    threads = max(1, cores // n)
    replicas = [Replica("cpu", None, threads) for _ in range(n)]
    # decoding is a few percent of CPU detection time: one decoder per replica at most
    decoders = max(1, min(n, cores - n * threads + 1))
    reasons.append(
        f"{n} CPU replica(s) x {threads} thread(s) = min(cores {cores} / {limits.cpu_threads_per_replica}, "
        f"RAM {_fmt(inventory.ram_available)} / {_fmt(cost.host_bytes)})"
    )
    reasons.append(
        f"decoders: {decoders} x 1 FFmpeg thread (detection dominates on a CPU: the replicas get the cores, "
        "a decoder only keeps them fed)"
    )
    if limits.batch_size is None:
        reasons.append(f"batch {CPU_BATCH}: on a CPU, batches are no faster per frame (CRAFT slower, PP-OCR equal)")
    # decoding only keeps CPU replicas fed: the floor is budget enough
    return Plan(True, "cpu", replicas, decoders, limits.batch_size or CPU_BATCH, gpus, cost, reasons, decoder_threads=1,
                frame_buffer_bytes=limits.min_frame_buffer_bytes)
