"""Where outcomes go, for every executor: outputs, journal, progress, summary.

Resume lives here: the collector opens the journal, tells the executor which
samples are already done, and commits outputs and journal together.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from pathlib import Path

from ..calibration import load_calibration
from ..config import RunConfig
from ..data.dataset import count_rows
from ..data.export import ExportWriter, output_paths, read_jsonl, write_json_atomic
from ..data.journal import Journal
from ..outcome import SampleOutcome
from ..report.summary import SummaryBuilder
from ..resources.planner import Plan
from .monitor import Progress, ResourceMonitor, nvml_query

log = logging.getLogger(__name__)


class AlreadyComplete(Exception):
    """The export folder holds a finished run of the same settings."""


def semantic_settings(config: RunConfig) -> dict:
    """What changes the answers: a resume with other values is refused.
    (np, batch size, device and planning do not change answers.)"""
    return {
        "dataset_path": str(Path(config.dataset_path).resolve()),
        "kept_file": str(Path(config.kept_file).resolve()),
        "filter": config.filter.model_dump(),
        "max_video_pixels": config.max_video_pixels,
        "max_video_duration_s": config.max_video_duration_s,
        "calibration": ratio_source(config).get("calibration_fingerprint"),
    }


def ratio_source(config: RunConfig) -> dict:
    """Which detector produced the ratios, and whether they are on CRAFT's scale."""
    op = config.filter
    out: dict = {"detector": op.detector, "max_side": op.max_side}
    if op.detector == "craft":
        out["scale"] = "craft" + ("" if op.max_side is None else f" at max_side {op.max_side} (not Data-Juicer's native frames)")
    elif op.calibration is None:
        out["scale"] = f"{op.detector}'s own (uncalibrated: thresholds tuned for CRAFT do not carry over)"
    else:
        calibration = load_calibration(op.calibration)
        out.update(scale=f"craft, mapped from {op.detector} by {op.calibration}", calibration=op.calibration,
                   calibration_fingerprint=calibration.fingerprint,
                   calibration_held_out=calibration.report.get("held_out", {}).get("agreement"))
    return out


class Collector:
    def __init__(self, config: RunConfig, plan: Plan | None, executor: str, restart: bool = False,
                 commit_every_s: float = 2.0, gpu_query=None):
        self.config, self.plan, self.executor = config, plan, executor
        self.journal = Journal(config.export_dir, semantic_settings(config), restart=restart)
        if self.journal.resumed.complete:
            self.journal.close()
            raise AlreadyComplete(f"{config.export_dir} already holds this run's finished outputs (pass --restart to redo it)")
        self.done = set(self.journal.resumed.done)
        if self.done:
            log.info("resuming: %d samples already done in %s", len(self.done), config.export_dir)
        self.writer = ExportWriter(config.export_dir, config.kept_file, self.journal.resumed.offsets)
        self.total = count_rows(config.dataset)
        self.summary = SummaryBuilder()
        # GPUs are watched where this process runs; a cluster run's nodes report their own
        gpus = plan.gpus if plan is not None else []
        reserves = {g.index: g.reserve for g in gpus}
        query = gpu_query if gpu_query is not None else (nvml_query if gpus and not config.simulate_gpus else None)
        self.monitor = ResourceMonitor(query, reserves).start()
        self.progress = Progress(self.total, len(self.done), self.monitor)
        self._pending: list[int] = []
        self._last_commit = time.monotonic()
        self.commit_every_s = commit_every_s

    def add(self, outcome: SampleOutcome) -> None:
        self.writer.write(outcome)
        self.summary.add(outcome)
        self.progress.update(outcome.status, len(outcome.videos))
        self._pending.append(outcome.index)
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.commit()

    def commit(self) -> None:
        if self._pending:
            self.journal.commit(self._pending, self.writer.commit())
            self._pending = []
        self._last_commit = time.monotonic()

    def finish(self, **sections) -> dict:
        """Commit, write the final files in input order, and the summary."""
        self.commit()
        self.monitor.stop()
        self.progress.close()
        self.writer.finalize()
        paths = output_paths(self.config.export_dir, self.config.kept_file)
        counts = {name: sum(1 for _ in read_jsonl(paths[name])) for name in ("kept", "dropped", "errors")}
        kinds = Counter(r["kind"] for r in read_jsonl(paths["errors"]))
        summary = self.summary.build(
            self.total if self.total is not None else sum(counts.values()),
            {"kept": counts["kept"], "dropped": counts["dropped"], "error": counts["errors"]},
            dict(kinds),
            executor=self.executor,
            resumed_with_done=len(self.journal.resumed.done),
            resources=self.monitor.report(),
            **({"plan": self.plan.to_json()} if self.plan is not None else {}),
            config=self.config.model_dump(),
            ratios=ratio_source(self.config),
            pid=os.getpid(),
            **sections,
        )
        write_json_atomic(self.config.export_dir / "summary.json", summary)
        self.journal.mark_complete()
        self.journal.close()
        self.writer.remove_parts()
        return summary
