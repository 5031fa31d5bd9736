"""One entry for running a config with the executor it names: used by
``textsieve run`` and by ``textsieve calibrate`` for its two passes."""

from __future__ import annotations

from rich.console import Console

from ..config import RunConfig
from ..detect.craft import check_precision
from ..report.plan_table import render_plan
from ..report.summary import RunSummary
from .lifecycle import Executor, RunSetup
from .local import LocalExecutor
from .planning import plan_for
from .preflight import preflight
from .ray_exec import RayExecutor
from .serial import SerialExecutor


def execute(config: RunConfig, restart: bool = False, retry_errors: bool = False,
            console: Console | None = None) -> RunSummary | None:
    """Check, plan (printed to ``console``) and run; the summary, or None
    when the plan found nowhere to run. Raises ConfigError before any work
    for a mistake, AlreadyComplete for a finished run, RunStopped when the
    run stopped part-way (resumable)."""
    console = console or Console(stderr=True)
    calibration = preflight(config)
    if config.executor == "ray":
        return RayExecutor(RunSetup.resolve(config, calibration=calibration, restart=restart,
                                            retry_errors=retry_errors), console=console).run()
    inventory, plan = plan_for(config)
    render_plan(inventory, plan, console)
    if not plan.ok:
        return None
    if config.filter.detector != "ppocr":
        for replica in plan.replicas:  # before any work: a Ray node's replicas are checked as their models load
            check_precision(replica.device, config.filter.precision)
    setup = RunSetup.resolve(config, plan, calibration, restart, retry_errors)
    executor: Executor = SerialExecutor(setup) if config.executor == "serial" else LocalExecutor(setup)
    return executor.run()
