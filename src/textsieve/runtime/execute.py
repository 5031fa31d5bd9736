"""One entry for running a config with the executor it names: used by
``textsieve run`` and by ``textsieve calibrate`` for its two passes."""

from __future__ import annotations

from rich.console import Console

from ..config import RunConfig


def execute(config: RunConfig, restart: bool = False, console: Console | None = None) -> dict | None:
    """Plan (printed to ``console``) and run; the summary, or None when the
    plan found nowhere to run. Raises AlreadyComplete for a finished run."""
    from ..detect import registry
    from ..report.plan_table import render_plan
    from .planning import detector_spec, plan_for

    config.require_io()
    name, params = detector_spec(config)
    registry.check(registry.prepare(name, **params))
    if config.executor == "ray":
        from .ray_exec import RayExecutor

        return RayExecutor(config, restart=restart, address=config.ray_address).run()
    inventory, plan = plan_for(config)
    render_plan(inventory, plan, console or Console(stderr=True))
    if not plan.ok:
        return None
    if config.executor == "serial" or config.np == 1:
        from .serial import run_serial

        return run_serial(config, plan, restart=restart)
    from .local import LocalExecutor

    return LocalExecutor(config, plan, restart=restart).run()
