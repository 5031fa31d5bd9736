"""Data-Juicer's process-count rule against textsieve's planner, on the same
simulated inventories. Prints the markdown table of docs/planner.md:

    python bench/compare_planner.py

Data-Juicer (1.x, `calculate_np`) has had two forms of its GPU rule, both
without a reserve, both ignoring CUDA_VISIBLE_DEVICES, both placing workers
on GPUs round-robin, each worker holding one model copy on its GPU:
  min-form: np = min(np_user, floor(min_i free_i / mem_required) * n_gpus)
  sum-form: np = min(np_user, sum_i floor(free_i / mem_required))
(at least 1 either way; with no mem_required, np = np_user).
The op builds ``easyocr.Reader`` with its default ``gpu=True``, which wraps
CRAFT in DataParallel over every visible GPU: then every worker puts a copy
on every GPU, the last column.
"""

from __future__ import annotations

from textsieve.resources.inventory import GiB, parse_simulated
from textsieve.resources.planner import ModelCost, PlanLimits, plan

COST = 2.5 * GiB  # one CRAFT replica on a GPU (declared default)

CASES = [
    ("8x80G idle, np=40", "80GiB:79GiB," * 8, 40, True),
    ("8x80G, GPU3 half used, np=40", ",".join("80GiB:40GiB" if i == 3 else "80GiB:79GiB" for i in range(8)), 40, True),
    ("4x24G, GPU1 3 GiB free, np=16", "24GiB:23GiB,24GiB:3GiB,24GiB:23GiB,24GiB:23GiB", 16, True),
    ("2x80G + 2x24G, np=32", "80GiB:79GiB,80GiB:79GiB,24GiB:23GiB,24GiB:23GiB", 32, True),
    ("8x16G, np=40, no mem_required", "16GiB:15GiB," * 8, 40, False),
    ("1x24G, 3 GiB free, np=4", "24GiB:3GiB", 4, True),
]


def dj_workers(free: list[int], np_user: int, mem_required: float | None, form: str) -> list[int]:
    """Model copies per GPU under Data-Juicer's rule and round-robin placement."""
    n = len(free)
    if not mem_required:
        total = np_user
    elif form == "min":
        total = min(np_user, int(min(free) // mem_required) * n)
    else:
        total = min(np_user, sum(int(f // mem_required) for f in free))
    total = max(1, total)
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def over(copies: list[int], free: list[int], totals: list[int]) -> str:
    bad = [i for i, (c, f) in enumerate(zip(copies, free)) if c * COST > f]
    if bad:
        return "**OOM** on GPU " + ",".join(map(str, bad))
    # textsieve's default reserve: max(1 GiB, 5% of total)
    tight = [i for i, (c, f, t) in enumerate(zip(copies, free, totals)) if f - c * COST < max(GiB, 0.05 * t)]
    return "fits, no reserve on GPU " + ",".join(map(str, tight)) if tight else "fits"


def main() -> None:
    print("| case | DJ min-form, copies per GPU | DJ sum-form, copies per GPU | DJ with gpu=True (DataParallel) | textsieve replicas per GPU (+ decoders) |")
    print("|---|---|---|---|---|")
    for name, spec, np_user, has_mem in CASES:
        inv = parse_simulated(spec.strip(","), cpu=64, ram=512 * GiB)
        free = [g.free for g in inv.gpus]
        totals = [g.total for g in inv.gpus]
        mem = COST if has_mem else None
        dj_min = dj_workers(free, np_user, mem, "min")
        dj_sum = dj_workers(free, np_user, mem, "sum")
        p = plan(inv, ModelCost("craft", int(COST), int(1.5 * GiB), "declared"), PlanLimits(np=np_user))
        ours = [g.replicas for g in p.gpus]
        assert all(r * COST <= g.budget for r, g in zip(ours, p.gpus))
        everywhere = [sum(dj_min)] * len(free)
        print(
            f"| {name} | {dj_min} ({sum(dj_min)}): {over(dj_min, free, totals)} "
            f"| {dj_sum} ({sum(dj_sum)}): {over(dj_sum, free, totals)} "
            f"| {everywhere[0]} on each: {over(everywhere, free, totals)} "
            f"| {ours} + {p.decoders} decoders: "
            f"{over(ours, free, totals) if p.device_kind == 'gpu' else 'no GPU fits one replica: CPU fallback (or stop)'} |"
        )


if __name__ == "__main__":
    main()
