"""One entry for running a config with the executor it names: used by
``textsieve run`` and by ``textsieve calibrate`` for its two passes."""

from __future__ import annotations

from rich.console import Console

from ..config import RunConfig


def execute(config: RunConfig, restart: bool = False, retry_errors: bool = False,
            console: Console | None = None) -> dict | None:
    """Check, plan (printed to ``console``) and run; the summary, or None
    when the plan found nowhere to run. Raises ConfigError before any work
    for a mistake, AlreadyComplete for a finished run, RunStopped when the
    run stopped part-way (resumable)."""
    from ..report.plan_table import render_plan
    from .planning import plan_for
    from .preflight import preflight

    console = console or Console(stderr=True)
    calibration = preflight(config)
    if config.executor == "ray":
        from .ray_exec import RayExecutor

        return RayExecutor(config, calibration, restart=restart, retry_errors=retry_errors,
                           address=config.ray_address, console=console).run()
    inventory, plan = plan_for(config)
    render_plan(inventory, plan, console)
    if not plan.ok:
        return None
    if config.executor == "serial":
        from .serial import run_serial

        return run_serial(config, plan, calibration, restart=restart, retry_errors=retry_errors)
    from .local import LocalExecutor

    return LocalExecutor(config, plan, calibration, restart=restart, retry_errors=retry_errors).run()
