"""`textsieve plan` output: a table with the reason behind every number."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..resources.inventory import GiB, Inventory
from ..resources.planner import Plan


def _gib(n: int) -> str:
    return f"{n / GiB:.1f}"


def render_plan(inventory: Inventory, plan: Plan, console: Console | None = None) -> None:
    console = console or Console()
    console.print(
        f"Inventory ({inventory.source}): {len(inventory.gpus)} GPU(s), {inventory.cpu_cores:g} CPU core(s), "
        f"{_gib(inventory.ram_available)} GiB RAM available"
    )
    for note in inventory.notes:
        console.print(f"  note: {note}")
    if plan.gpus:
        table = Table(title="GPU plan (GiB)")
        for col in ("gpu", "name", "total", "free", "reserve", "budget", "fits", "replicas", "mem fraction", "why"):
            table.add_column(col, overflow="fold")
        for g in plan.gpus:
            table.add_row(
                str(g.index), g.name, _gib(g.total), _gib(g.free), _gib(g.reserve), _gib(g.budget),
                str(g.fits), str(g.replicas), f"{g.memory_fraction:.3f}" if g.replicas else "-", g.reason,
            )
        console.print(table)
    devices = sorted({r.device for r in plan.replicas})
    console.print(
        f"Plan: {'OK' if plan.ok else 'NOTHING FITS'}; {len(plan.replicas)} detector replica(s) on "
        f"{', '.join(devices) or 'nothing'}, {plan.decoders} decoder(s), batch {plan.batch_size}"
    )
    for reason in plan.reasons:
        console.print(f"  - {reason}")
    if plan.error:
        console.print(f"[red]{plan.error}[/red]")
