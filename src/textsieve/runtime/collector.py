"""Where outcomes go, for every executor: outputs, journal, progress, summary.

Resume lives here: the collector locks the export folder, opens the
journal, tells the executor which samples are already done, and commits
outputs and journal together. It also watches the outcomes for a failure
that is not the samples' own: the same detector failure on sample after
sample stops the run (see :class:`FailureStreak`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections import Counter
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Iterator

from .. import __version__
from ..calibration import load_calibration
from ..config import RunConfig
from ..data.dataset import count_rows
from ..data.dj_files import write_dj_layout, write_segments
from ..data.lock import FolderLock
from ..data.outputs import OutputStore, Sharded, SingleFiles
from ..data.shards import ShardEntry
from ..errors import TRANSIENT_KINDS, ConfigError, RunStopped, SystemicFailure
from ..outcome import SampleOutcome
from ..redact import mask_url, redact
from ..report.summary import (Counts, DataJuicerOutputs, ExecutorReport, RatioSource, Resources, RunSummary,
                              ShardedOutputs, SummaryBuilder, finished_now)
from ..report.typed import parse
from ..resources.planner import Plan
from .monitor import Progress, ResourceMonitor, nvml_query

log = logging.getLogger(__name__)

class AlreadyComplete(Exception):
    """The export folder holds a finished run of the same settings."""


def semantic_settings(config: RunConfig) -> dict:
    """What changes the answers: a resume with other values is refused.
    (np, batch size, device and planning do not change answers, nor where
    the export folder lies: a copied or moved folder resumes, so the kept
    file is named within it.)"""
    return {
        "dataset_path": mask_url(config.dataset),  # stored in the journal and summary: never a secret
        "kept_file": Path(config.kept_file).name,
        "filter": config.filter.without_kinds(),
        "max_video_pixels": config.video_pixel_limit,
        "max_video_duration_s": config.max_video_duration_s,
        "calibration": ratio_source(config).get("calibration_fingerprint"),
        "outputs": {"sharded": config.sharded, "export_type": config.export_type},
    }


def ratio_source(config: RunConfig) -> dict:
    """Which detector produced the ratios, and whether they are on CRAFT's scale."""
    op = config.filter
    out: dict = {"detector": op.detector, "max_side": op.max_side}
    if op.precision != "fp32":
        out["precision"] = op.precision
    if op.detector == "craft":
        out["scale"] = "craft" + ("" if op.max_side is None else f" at max_side {op.max_side} (not Data-Juicer's native frames)")
        if op.precision != "fp32":
            out["scale"] += f" in {op.precision} (not Data-Juicer's fp32: boxes and ratios differ slightly)"
    elif op.detector == "cascade":
        calibration = load_calibration(op.calibration)
        out.update(scale=f"craft's decisions: ppocr mapped by {op.calibration} where it settles a video, CRAFT's "
                         "own ratios where it does not (see decided_by per video)",
                   calibration=op.calibration, calibration_fingerprint=calibration.fingerprint,
                   cascade_held_out=calibration.report.get("cascade_held_out", {}).get("agreement"))
        if op.precision != "fp32":
            out["scale"] += f"; CRAFT in {op.precision}, not Data-Juicer's fp32"
    elif op.calibration is None:
        out["scale"] = f"{op.detector}'s own (uncalibrated: thresholds tuned for CRAFT do not carry over)"
    else:
        calibration = load_calibration(op.calibration)
        out.update(scale=f"craft, mapped from {op.detector} by {op.calibration}", calibration=op.calibration,
                   calibration_fingerprint=calibration.fingerprint,
                   calibration_held_out=calibration.report.get("held_out", {}).get("agreement"))
    return out


class FailureStreak:
    """Tells a broken detector from bad samples.

    An outcome failed at detection carries a ``cause`` (the failure without
    the sample's paths). While consecutive such outcomes share one cause and
    no sample succeeds in between, they are held back, unwritten; ``limit``
    of them in a row stop the run with :class:`SystemicFailure`, and since
    they were never committed, the same command judges them again once the
    cause is fixed. A success, or another cause, releases the held outcomes
    as the samples' own errors. Decoding failures (a bad file) break no
    streak and join none."""

    def __init__(self, limit: int):
        self.limit = limit
        self.cause: str | None = None
        self.held: list[SampleOutcome] = []

    def feed(self, outcome: SampleOutcome) -> list[SampleOutcome]:
        """The outcomes to write now."""
        if outcome.cause is None:
            if outcome.status == "error":
                return [outcome]
            released, self.held, self.cause = self.held + [outcome], [], None
            return released
        if outcome.cause != self.cause:
            released, self.held, self.cause = self.held, [outcome], outcome.cause
            return released
        self.held.append(outcome)
        if len(self.held) >= self.limit:
            example = self.held[0].error or {}
            if self.cause.startswith("remote_read"):
                raise SystemicFailure(
                    f"{len(self.held)} samples in a row could not be read from their store, and none in between "
                    f"could: {self.cause} (first: {example.get('message')}). The samples are not to blame, so none "
                    "was recorded as an error: check the store (endpoint, network, credentials), then run the same "
                    "command again; it resumes (failure_streak sets how many in a row stop a run)")
            raise SystemicFailure(
                f"the detector failed the same way on {len(self.held)} samples in a row, and on none in between: "
                f"{self.cause} (first: {example.get('message')}). The samples are not to blame, so none was recorded "
                "as an error: fix the detector or its device, then run the same command again; it resumes "
                "(failure_streak sets how many in a row stop a run)")
        return []

    def flush(self) -> list[SampleOutcome]:
        released, self.held, self.cause = self.held, [], None
        return released


class Collector:
    """Use as a context manager: a run that ends by an exception commits what
    it can and releases the folder, so the same command resumes."""

    # the journal is committed at most this often: each commit fsyncs
    COMMIT_EVERY_S = 2.0

    def __init__(self, config: RunConfig, plan: Plan | None, executor: str, restart: bool = False,
                 retry_errors: bool = False, total: int | None = None):
        self.config, self.plan, self.executor = config, plan, executor
        # counted first: a dataset that cannot be read in full is refused before anything is written
        self.total = total if total is not None else count_rows(config.dataset)
        self.lock = FolderLock(config.export_dir).acquire()
        try:
            self._open(restart, retry_errors)
        except BaseException:
            self.lock.release()
            raise
        self.summary = SummaryBuilder()
        self.streak = FailureStreak(config.failure_streak)
        # GPUs are watched where this process runs; a cluster run's nodes report their own
        gpus = plan.gpus if plan is not None else []
        reserves = {g.index: g.reserve for g in gpus}
        query = nvml_query if gpus and not config.simulate_gpus else None
        self.monitor = ResourceMonitor(query, reserves).start()
        self.progress = Progress(self.total, self.output.done_count, self.monitor)
        self._last_commit = time.monotonic()
        self._closed = False

    def _open(self, restart: bool, retry_errors: bool) -> None:
        config = self.config
        kinds = frozenset(k.value for k in TRANSIENT_KINDS) if retry_errors else None
        settings = semantic_settings(config)
        with self._io():
            if config.sharded:
                self.output: OutputStore = Sharded(config.export_dir, config.export_type, config.export_shard_size,
                                                   settings, restart, kinds, kept=config.kept_shards)
            else:
                self.output = SingleFiles(config.export_dir, config.kept_file, settings, restart, kinds)
        if self.output.retried:
            log.info("--retry-errors: judging %d sample(s) with transient errors again", len(self.output.retried))
        if self.output.complete:
            self.output.close()
            _check_finished(config)
            more = " and has no transient errors to retry" if retry_errors else " (pass --restart to redo it)"
            raise AlreadyComplete(f"{config.export_dir} already holds this run's finished outputs{more}")
        if self.output.done_count:
            log.info("resuming: %d samples already done in %s", self.output.done_count, config.export_dir)

    @cached_property
    def done(self) -> set[int]:
        """The samples already done, for executors that check rows one by one
        (the Ray executor ships ``output.done_ranges()`` instead)."""
        return set(self.output.done)

    @contextmanager
    def _io(self) -> Iterator[None]:
        """A failed write (a full disk, a folder gone read-only) stops the run
        with one line; the journal still describes the last commit."""
        try:
            yield
        except OSError as exc:
            what = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            where = exc.filename or self.config.export_dir
            raise RunStopped(f"cannot write {where}: {what}. Free space or fix the folder, then run the same "
                             "command again: it resumes from the last commit") from exc

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:
            self.abort()

    def add(self, outcome: SampleOutcome, written: bool = False) -> None:
        """An outcome to write (or, ``written``, that a worker already wrote
        into a shard: counted, and shown to the failure-streak guard)."""
        for ready in self.streak.feed(outcome):
            if written and ready is outcome:
                self.counted(ready)
            else:
                self._write(ready)

    def _write(self, outcome: SampleOutcome) -> None:
        with self._io():
            self.output.write(outcome)
        self.counted(outcome)
        if time.monotonic() - self._last_commit >= self.COMMIT_EVERY_S:
            self.commit()

    def counted(self, outcome: SampleOutcome) -> None:
        """Progress and this session's numbers for an outcome, wherever it was written."""
        self.summary.add(outcome)
        self.progress.update(outcome.status, len(outcome.videos))

    def add_shards(self, entry: ShardEntry) -> None:
        """Commit shards a worker wrote (Ray): their samples are done."""
        if not isinstance(self.output, Sharded):  # workers write shards only when the outputs are sharded
            raise TypeError(f"shards were committed to {self.config.export_dir}, whose outputs are single files")
        with self._io():
            self.output.add_entry(entry)

    def commit(self) -> None:
        with self._io():
            self.output.commit()
        self._last_commit = time.monotonic()

    def abort(self) -> None:
        """End a run that stopped: keep what was committed (and commit what
        can be), release the folder. Never raises over the first error."""
        if self._closed:
            return
        self._closed = True
        try:
            self.commit()
        except Exception as exc:  # a full disk: the journal holds the previous commit
            log.debug("final commit failed: %s", exc)
        for close in (self.monitor.stop, self.progress.close, self.output.close, self.lock.release):
            try:
                close()
            except Exception as exc:
                log.debug("closing after a stop: %s", exc)

    def finish(self, report: ExecutorReport, wall_s: float) -> RunSummary:
        """Commit, write the final files in input order, and the summary
        (with the executor's ``report`` and its whole run's ``wall_s``)."""
        for ready in self.streak.flush():
            self._write(ready)
        self.commit()
        self.monitor.stop()
        self.progress.close()
        with self._io():
            summary = self._finalize(report, wall_s)
        self._closed = True
        self.lock.release()
        return summary

    def _finalize(self, report: ExecutorReport, wall_s: float) -> RunSummary:
        totals = self.output.finish()
        # ratio_source and video_sources are plain JSON (the journal stores the
        # first): typed here, where the summary is built
        ratios = parse(RatioSource, {**ratio_source(self.config), **video_sources(self.output.records("stats"))})
        if ratios.outside_calibration_videos:
            log.warning("%d video(s) had fast ratios past the range the calibration was fitted on (it extends flat "
                        "there): see outside_calibration in stats.jsonl; calibrate on a sample that covers them",
                        ratios.outside_calibration_videos)
        counts = totals.counts
        if self.config.filter.segment_s is not None:
            write_segments(self.output.records("stats"), self.config.export_dir / "segments.jsonl")
        outputs: ShardedOutputs | DataJuicerOutputs | None = None
        if self.config.export_file is not None and not self.config.sharded:
            stats = write_dj_layout(self.config.export_file, self.config.kept_file, self.config.keep_stats_in_res_ds)
            outputs = DataJuicerOutputs(kept=str(self.config.export_file), stats=str(stats))
        elif totals.files:
            outputs = ShardedOutputs(**totals.files)
        summary = RunSummary(
            textsieve_version=__version__,
            finished_at=finished_now(),
            counts=Counts.of(self.total if self.total is not None else sum(counts.values()),
                             counts["kept"], counts["dropped"], counts["errors"]),
            errors_by_kind=dict(sorted(totals.error_kinds.items())),
            this_session=self.summary.session(),
            executor=self.executor,
            resumed_with_done=totals.resumed_with_done,
            retried_errors=totals.retried,
            outputs=outputs,
            resources=parse(Resources, self.monitor.report()),
            plan=self.plan,
            config=redact(self.config.model_dump()),
            ratios=ratios,
            pid=os.getpid(),
            executor_detail=report.executor_detail,
            detector=report.detector,
            workers=report.workers,
            node_resources=report.node_resources,
            wall_s=wall_s,
        )
        summary.write(self.config.export_dir / "summary.json")
        self.output.mark_complete()
        return summary


def _check_finished(config: RunConfig) -> None:
    """A finished run is reported finished only if what it finished is
    there: else a user would be told all is well over a folder without its
    summary or outputs (exit 2, and the way out)."""
    export_dir = config.export_dir
    needed = [export_dir / "summary.json"]
    if not config.sharded:
        needed += [export_dir / name for name in ("dropped.jsonl", "errors.jsonl", "stats.jsonl")]
        needed.append(config.export_file if config.export_file is not None else config.kept_file)
    for path in needed:
        try:
            if path.name == "summary.json":
                json.loads(path.read_text(encoding="utf-8"))["counts"]
            elif not path.is_file():
                raise FileNotFoundError(path)
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"{export_dir}'s journal says the run finished, but {path} is missing or damaged: "
                              "restore it, or pass --restart to judge the dataset again") from None


def video_sources(stats: Iterator[dict]) -> dict:
    """Over every judged video of the run (resumed sessions included): which
    detector decided it under the cascade and why CRAFT re-judged, and how
    many fell outside the calibration's fitted range."""
    decided: Counter[str] = Counter()
    routed: Counter[str] = Counter()
    outside = 0
    for record in stats:
        for video in record["videos"]:
            outside += bool(video.get("outside_calibration"))
            if "decided_by" in video:
                decided[video["decided_by"]] += 1
            if "routed" in video:
                routed[video["routed"]] += 1
    out: dict = {"outside_calibration_videos": outside}
    if decided:
        total = sum(decided.values())
        out["cascade"] = {"videos": total, "decided_by": dict(decided),
                          "share_sent_to_craft": round(decided.get("craft", 0) / total, 4),
                          "why_sent": dict(routed)}
    return out
