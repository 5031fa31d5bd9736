"""Helpers for tests that run textsieve as a user does and compare outputs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from textsieve.cli import main

OUTPUTS = ("kept.jsonl", "dropped.jsonl", "errors.jsonl", "stats.jsonl")
# the detector of runs whose subject is not the detector: a PP-OCR replica starts (and restarts,
# after a crash or a hang) in under a second, CRAFT's in about 3 s of CPU in each process
# (importing torch and EasyOCR)
PPOCR = ("--detector", "ppocr")

# shaped like Data-Juicer's own video recipes (configs/data_juicer_recipes)
RECIPE = """project_name: video-text-filter
dataset_path: {dataset}
export_path: {export}
np: 2
{globals}
process:
  - video_duration_filter:
      min_duration: 0.5
      max_duration: 100
  - video_ocr_area_ratio_filter:
      max_area_ratio: 0.05
      frame_sample_num: 3
  - video_resolution_filter:
      min_width: 100
      min_height: 100
"""


def args(dataset: Path, export: Path, executor: str, *extra: str) -> list[str]:
    # batch 4: a video's 3 frames go as one batch, so an out-of-memory at the
    # first call always has a batch to halve
    return ["run", "--dataset", str(dataset), "--export", str(export), "--executor", executor,
            "--max-area-ratio", "0.05", "--batch-size", "4", *extra]


def outputs(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in OUTPUTS}


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def journal_done(journal: Path, judged: frozenset[int] | None = None) -> int:
    """How many samples the run's journal lists as done (0 while it has none,
    or ``judged`` is given and none of those is done yet: the bad rows,
    settled first, do not show a run part-way). A line being written ends
    the count."""
    if not journal.exists():
        return 0
    done: set[int] = set()
    for line in journal.read_text().splitlines()[1:]:
        try:
            done.update(json.loads(line).get("done", []))
        except ValueError:
            break
    return len(done) if judged is None or done & judged else 0


def in_process(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A textsieve command through the CLI's own entry, in this process (the model libraries
    load once per session, not once per command): its exit code, stdout, and stderr with the
    log records the command prints there. The streams encode as a process's own do (stdout
    strict UTF-8, stderr escaping what UTF-8 cannot hold), so that a print that would stop
    the command stops it here too; ``env`` and ``cwd`` hold for the command only."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
    handler = logging.StreamHandler(err)
    root, saved_env, saved_cwd = logging.getLogger(), {k: os.environ.get(k) for k in env or {}}, os.getcwd()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.environ.update(env or {})
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        os.chdir(saved_cwd)
        root.removeHandler(handler)
        root.setLevel(level)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess(list(argv), code, *(s.buffer.getvalue().decode("utf-8", "replace")
                                                            for s in (out, err)))


def run_ok(argv: list[str], executor: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A command that must succeed: serial and local in this process (``env`` for the
    command only); Ray as a CLI subprocess with ``env`` (a test's ray_env: it joins the
    session's Ray instance, as a user's command joins a running cluster)."""
    if executor == "ray":
        done = subprocess.run([sys.executable, "-m", "textsieve.cli", *argv], capture_output=True, text=True,
                              timeout=600, env={**(env or {}), "RAY_USAGE_STATS_ENABLED": "0"})
    else:
        done = in_process(argv, env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def ray_job(ray_env: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """The environment of a CLI subprocess that joins the session's Ray instance (ray_env) as a
    job whose workers have ``env`` in their environment, as `ray job submit --runtime-env-json
    '{"env_vars": ...}'` gives a job's (the job manager hands the driver that runtime env in this
    variable, which is internal to Ray: fine with the pinned Ray). A variable set on a driver
    alone does not reach the actors of an instance that was already running."""
    return {**ray_env, **env, "RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps({"runtime_env": {"env_vars": env}})}


def workers_of(pid: int) -> list:
    """A local run's worker processes: the forks of its fork server (not the
    resource tracker, Python's, which a run cannot survive losing mid-call).
    Empty once the run has ended."""
    import psutil

    try:
        return [w for c in psutil.Process(pid).children() if "forkserver" in " ".join(c.cmdline())
                for w in c.children()]
    except psutil.Error:  # the run just ended, or a worker just died
        return []
