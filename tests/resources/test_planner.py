"""The planner on simulated inventories: never past a GPU's budget, never a
fitting replica left unused below the caps, capacity-following, deterministic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textsieve.resources.inventory import GiB, GpuInfo, Inventory, parse_simulated
from textsieve.resources.planner import ModelCost, PlanLimits, plan

COST = ModelCost("craft", gpu_bytes=2 * GiB, host_bytes=int(1.5 * GiB), source="test")


@st.composite
def inventories(draw):
    n = draw(st.integers(min_value=0, max_value=8))
    gpus = []
    for i in range(n):
        total = draw(st.integers(min_value=4, max_value=96)) * GiB // 2
        free = draw(st.integers(min_value=0, max_value=total))
        gpus.append(GpuInfo(i, f"GPU-{i}", "sim", total, free))
    return Inventory(
        gpus=tuple(gpus),
        cpu_cores=float(draw(st.integers(min_value=1, max_value=128))),
        ram_available=draw(st.integers(min_value=1, max_value=1024)) * GiB,
        source="simulated",
    )


limits_strategy = st.builds(
    PlanLimits,
    reserve_bytes=st.integers(min_value=0, max_value=4 * GiB),
    reserve_fraction=st.floats(min_value=0, max_value=0.3),
    max_replicas_per_gpu=st.integers(min_value=1, max_value=8),
    np=st.one_of(st.none(), st.integers(min_value=1, max_value=64)),
    allow_cpu_fallback=st.booleans(),
)
costs = st.integers(min_value=1, max_value=20).map(lambda q: ModelCost("m", q * GiB // 2, GiB, "test"))


@settings(max_examples=500, deadline=None)
@given(inv=inventories(), cost=costs, limits=limits_strategy)
def test_plan_invariants(inv, cost, limits):
    p = plan(inv, cost, limits)
    assert p == plan(inv, cost, limits)  # deterministic
    caps = []
    for g, info in zip(p.gpus, inv.gpus):
        reserve = max(limits.reserve_bytes, int(limits.reserve_fraction * info.total))
        assert g.budget == info.free - reserve
        assert g.replicas * cost.gpu_bytes <= max(0, g.budget)  # never past the budget
        assert g.replicas <= limits.max_replicas_per_gpu
        if g.replicas:
            # each replica's allocator cap holds one replica, and all caps fit the budget
            assert g.memory_fraction * info.total >= cost.gpu_bytes * 0.999
            assert g.memory_fraction * info.total * g.replicas <= g.budget + 1e-6 * info.total
        caps.append(min(limits.max_replicas_per_gpu, max(0, g.budget) // cost.gpu_bytes))
    placed = sum(g.replicas for g in p.gpus)
    np_cap = limits.np  # np caps the replicas, never the decoders
    host_cap = max(0, (inv.ram_available - limits.decoder_bytes) // cost.host_bytes)
    # no fitting replica left unused below the caps, and host RAM never oversubscribed
    assert placed == min(sum(caps), host_cap, sum(caps) if np_cap is None else np_cap)
    assert placed * cost.host_bytes + limits.decoder_bytes <= max(inv.ram_available, limits.decoder_bytes)
    # breadth first by capacity: a GPU with room left is never two replicas
    # behind another, nor one behind a GPU that had less room when it got it
    for i, gi in enumerate(p.gpus):
        if gi.replicas < caps[i]:
            for gj in p.gpus:
                assert gi.replicas >= gj.replicas - 1
                if gj.replicas == gi.replicas + 1:
                    assert gi.budget - gi.replicas * cost.gpu_bytes <= gj.budget - gi.replicas * cost.gpu_bytes
    if placed:
        assert p.ok and p.device_kind == "gpu" and len(p.replicas) == placed
        assert all(r.device.startswith("cuda:") for r in p.replicas)
    elif limits.allow_cpu_fallback:
        assert p.ok and p.device_kind == "cpu" and p.replicas
    else:
        assert not p.ok and p.error and p.replicas == []
    if p.ok:
        assert p.decoders >= 1
        # decoded frames waiting for the replicas: a share of each decoder's RAM, never less than the floor
        per_decoder = limits.frames_per_decoder_bytes if placed else 0
        assert p.frame_buffer_bytes == max(limits.min_frame_buffer_bytes, p.decoders * per_decoder)
        assert limits.frames_per_decoder_bytes < limits.decoder_bytes
        if limits.np is not None:
            assert len(p.replicas) <= limits.np


def test_heterogeneous_partly_occupied_gpus():
    inv = parse_simulated("80GiB:72GiB,24GiB:3GiB,24GiB:20GiB,40GiB:0GiB", cpu=32, ram=256 * GiB)
    p = plan(inv, COST, PlanLimits(max_replicas_per_gpu=4))
    assert [g.replicas for g in p.gpus] == [4, 0, 4, 0]
    assert "budget" in p.gpus[1].reason and "< one replica" in p.gpus[1].reason
    # 24 GiB with 20 free: reserve max(1, 1.2) = 1.2 GiB -> 18.8 GiB -> 9 fit, capped at 4
    assert p.gpus[2].fits == 9 and "max_replicas_per_gpu" in p.gpus[2].reason


def test_np_cap_follows_capacity_not_round_robin():
    inv = parse_simulated("16GiB:16GiB,80GiB:80GiB,80GiB:40GiB", cpu=16, ram=64 * GiB)
    p = plan(inv, COST, PlanLimits(max_replicas_per_gpu=8, np=3))
    # 3 replicas, one per GPU: breadth first, each fits one
    assert [g.replicas for g in p.gpus] == [1, 1, 1]
    two = plan(inv, COST, PlanLimits(max_replicas_per_gpu=8, np=2))
    assert [g.replicas for g in two.gpus] == [0, 1, 1]  # the two roomiest
    # decoders follow the cores, not np: 16 cores - 0.5 per GPU replica
    assert (p.decoders, two.decoders) == (14, 15)
    assert "np=2 caps the total" in two.gpus[0].reason


def test_nothing_fits_without_fallback_says_so():
    inv = parse_simulated("24GiB:2GiB", cpu=8, ram=32 * GiB)
    p = plan(inv, COST, PlanLimits(allow_cpu_fallback=False))
    assert not p.ok and "nothing fits" in p.error and "GPU 0" in p.error
    fallback = plan(inv, COST, PlanLimits())
    assert fallback.ok and fallback.device_kind == "cpu"


def test_force_cpu_and_cpu_threads():
    inv = parse_simulated("80GiB:80GiB", cpu=16, ram=64 * GiB)
    p = plan(inv, COST, PlanLimits(force_cpu=True))
    assert p.device_kind == "cpu" and len(p.replicas) == 4 and all(r.threads == 4 for r in p.replicas)
    two_cores = plan(Inventory((), 2.0, 16 * GiB, "simulated"), COST, PlanLimits())
    assert [(r.device, r.threads) for r in two_cores.replicas] == [("cpu", 2)]


def test_worked_example_eight_h100_one_half_occupied():
    """docs/planner.md: 8 x 80 GiB, GPU 3 half occupied, a 2 GiB replica, default reserve."""
    spec = ",".join("80GiB:40GiB" if i == 3 else "80GiB:79GiB" for i in range(8))
    inv = parse_simulated(spec, cpu=96, ram=1024 * GiB)
    p = plan(inv, COST, PlanLimits())
    assert all(g.reserve == 4 * GiB for g in p.gpus)  # max(1 GiB, 5% of 80)
    assert [g.fits for g in p.gpus] == [37, 37, 37, 18, 37, 37, 37, 37]
    assert [g.replicas for g in p.gpus] == [2] * 8
    assert p.decoders == 88  # 96 cores - 16 replicas x 0.5 core
    assert p.frame_buffer_bytes == 22 * GiB  # 88 decoders x 256 MiB of frames waiting
    # np caps replicas, not decoders: 40 allows all 16 replicas, and decoders still follow the cores
    with_np = plan(inv, COST, PlanLimits(np=40))
    assert sum(g.replicas for g in with_np.gpus) == 16 and with_np.decoders == 88
    with_np = plan(inv, COST, PlanLimits(np=8))
    assert [g.replicas for g in with_np.gpus] == [1] * 8 and with_np.decoders == 92


@pytest.mark.parametrize("spec", ["80GiB", "abc:1GiB", "1GiB:2GiB"])
def test_bad_simulated_specs(spec):
    if spec == "80GiB":
        assert parse_simulated(spec, cpu=1, ram=GiB).gpus[0].free == 80 * GiB
    else:
        with pytest.raises(ValueError):
            parse_simulated(spec, cpu=1, ram=GiB)
