"""From a run's config to its plan: inventory (real or simulated), measured
model cost, limits. Shared by `textsieve plan`, `profile` and `run`."""

from __future__ import annotations

from dataclasses import replace

from ..config import RunConfig
from ..detect.registry import describe
from ..errors import ConfigError
from ..resources.inventory import Inventory, machine_inventory, parse_size
from ..resources.planner import GPU_BATCH, ModelCost, Plan, PlanLimits, plan
from ..resources.profile import plan_cost
from ..video.frames import scaled_size
from .flow import ModelSpec, ReplicaSpec, stages_of


def model_specs(config: RunConfig) -> tuple[ModelSpec, ...]:
    """The registry models a replica of this run hosts, with their loader
    parameters (two under ``detector: cascade``, sharing the replica's GPU
    memory in proportion to their declared costs)."""
    names = stages_of(config.filter)
    costs = [describe(name).declared_cost.gpu_bytes for name in names]
    specs = []
    for name, cost in zip(names, costs):
        params: dict = {}
        if name == "craft":
            # fp32 adds no key: the model's registry key stays what it was before precision existed
            params = {**({"weights_dir": config.weights_dir} if config.weights_dir else {}),
                      **({"precision": config.filter.precision} if config.filter.precision != "fp32" else {})}
        share = cost / sum(costs) if sum(costs) else 1 / len(names)
        specs.append(ModelSpec(name, tuple(sorted(params.items())), share, describe(name).provider))
    return tuple(specs)


def detect_frame_size(config: RunConfig) -> tuple[int, int]:
    """The largest frame the detector will see: the planned size, scaled by max_side."""
    return scaled_size(*config.frame_size, config.filter.max_side)


def limits_for(config: RunConfig) -> PlanLimits:
    return PlanLimits(
        reserve_bytes=parse_size(config.gpu_reserve),
        reserve_fraction=config.gpu_reserve_fraction,
        max_replicas_per_gpu=config.max_replicas_per_gpu,
        np=config.np,
        allow_cpu_fallback=config.cpu_fallback,
        force_cpu=config.device == "cpu",
        batch_size=config.batch_size,
    )


def inventory_for(config: RunConfig) -> Inventory:
    """The machine (or the simulated one) as the run may use it. A GPU the
    user names must exist: ``--device cuda:1`` on a machine without it is
    refused here, before any work, never quietly run on the CPU."""
    inventory = machine_inventory(simulate=config.simulate_gpus)
    return narrow_to_device(inventory, config.device)


def narrow_to_device(inventory: Inventory, device: str) -> Inventory:
    if not device.startswith("cuda"):
        return inventory
    seen = ", ".join(f"cuda:{g.index} ({g.name})" for g in inventory.gpus) or "none"
    why = "; ".join(inventory.notes)
    if device == "cuda":
        if not inventory.gpus:
            raise ConfigError(f"--device cuda: this machine shows no GPU ({why or inventory.source}); "
                              "use --device cpu or auto")
        return inventory
    index = device.split(":", 1)[1]
    if not index.isdigit():
        raise ConfigError(f"--device {device}: use auto, cpu, cuda or cuda:N")
    gpus = tuple(g for g in inventory.gpus if g.index == int(index))
    if not gpus:
        raise ConfigError(f"--device {device}: no such GPU here (GPUs seen: {seen}{'; ' + why if why else ''}); "
                          "use --device cpu, auto, or a GPU that exists")
    # an explicit device narrows the plan to that GPU
    return replace(inventory, gpus=gpus, notes=inventory.notes + (f"device {device}: other GPUs not used",))


def plan_for(config: RunConfig, inventory: Inventory | None = None) -> tuple[Inventory, Plan]:
    inventory = inventory or inventory_for(config)
    width, height = detect_frame_size(config)
    batch = config.batch_size or GPU_BATCH  # memory is planned for the larger, GPU batch
    costs = [plan_cost(m.name, [g.name for g in inventory.gpus], batch, width, height, describe(m.name).declared_cost)
             for m in model_specs(config)]
    cost = costs[0] if len(costs) == 1 else ModelCost(
        "+".join(c.model for c in costs), sum(c.gpu_bytes for c in costs), sum(c.host_bytes for c in costs),
        "; ".join(f"{c.model}: {c.source}" for c in costs))
    required = config.filter.mem_required
    if required not in (None, "", 0):
        # Data-Juicer's per-op memory: a size ("3GB") or a number of GiB
        gpu_bytes = parse_size(required) if isinstance(required, str) else int(float(required) * 2**30)
        cost = ModelCost(cost.model, gpu_bytes, cost.host_bytes,
                         f"mem_required {required!r} from the recipe for the GPU (instead of: {cost.source})")
    return inventory, plan(inventory, cost, limits_for(config))


def replica_specs(config: RunConfig, plan: Plan) -> list[ReplicaSpec]:
    """One spec per planned replica. On simulated GPUs the planned replicas
    run on the CPU (the plan is what a real machine of that shape would get;
    there is no GPU to run it on). Real GPUs are named to a child process by
    UUID in ``visible``, so its CUDA numbering cannot drift from NVML's."""
    models = model_specs(config)
    specs = []
    for replica in plan.replicas:
        visible = None
        if plan.simulated:
            replica = replace(replica, device="cpu", memory_fraction=None, memory_bytes=None)
        elif replica.device.startswith("cuda"):
            gpu = next(g for g in plan.gpus if f"cuda:{g.index}" == replica.device)
            visible = gpu.uuid if gpu.uuid.startswith("GPU-") else str(gpu.index)
        specs.append(ReplicaSpec(models, replica, plan.batch_size, config.cpu_fallback, visible))
    return specs
