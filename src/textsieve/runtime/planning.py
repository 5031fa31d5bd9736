"""From a run's config to its plan: inventory (real or simulated), measured
model cost, limits. Shared by `textsieve plan`, `profile` and `run`."""

from __future__ import annotations

from ..config import RunConfig
from ..detect.registry import DECLARED_COSTS
from ..resources.inventory import Inventory, machine_inventory, parse_size
from ..resources.planner import GPU_BATCH, Plan, PlanLimits, plan
from ..resources.profile import plan_cost
from ..video.frames import scaled_size


def detector_spec(config: RunConfig) -> tuple[str, dict]:
    """The registry name and loader parameters of the run's detector."""
    name = config.filter.detector
    params = {"weights_dir": config.weights_dir} if name == "craft" and config.weights_dir else {}
    return name, params


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
    inventory = machine_inventory(simulate=config.simulate_gpus)
    if config.device.startswith("cuda:") and not config.simulate_gpus:
        # an explicit device narrows the plan to that GPU
        index = int(config.device.split(":", 1)[1])
        inventory = Inventory(
            gpus=tuple(g for g in inventory.gpus if g.index == index),
            cpu_cores=inventory.cpu_cores,
            ram_available=inventory.ram_available,
            source=inventory.source,
            notes=inventory.notes + (f"device {config.device}: other GPUs not used",),
        )
    return inventory


def plan_for(config: RunConfig, inventory: Inventory | None = None) -> tuple[Inventory, Plan]:
    inventory = inventory or inventory_for(config)
    width, height = detect_frame_size(config)
    batch = config.batch_size or GPU_BATCH  # memory is planned for the larger, GPU batch
    name = config.filter.detector
    cost = plan_cost(name, [g.name for g in inventory.gpus], batch, width, height, DECLARED_COSTS[name])
    return inventory, plan(inventory, cost, limits_for(config))
