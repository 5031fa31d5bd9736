"""Failures that are not a sample's own, through the CLI as a user meets
them: they stop the run (or refuse it) with one line saying what to fix,
and never leave a column of error records behind. And the tools to recover:
the same command resumes, --retry-errors re-judges transient errors, one
run at a time owns a folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runs import args, outputs, ray_job, summary
from textsieve.cli import main
from textsieve.data.lock import LOCK_FILE
from textsieve.errors import ErrorKind, Failure
from textsieve.outcome import SampleOutcome
from textsieve.recipe import build_config
from textsieve.runtime.collector import Collector, FailureStreak


def cli(*argv: str, env: dict | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textsieve.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def error_kinds(folder: Path, name: str = "errors.jsonl") -> list[str]:
    path = folder / name
    if not path.exists():
        return []
    return [json.loads(line.split("\t", 1)[-1])["kind"] for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def undisturbed(small_dataset, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("undisturbed") / "out"
    assert main(args(small_dataset, out, "serial")) == 0
    return outputs(out)


# ---- systemic failures stop the run --------------------------------------------------

@pytest.mark.parametrize("executor", ["serial", "local", "ray"])
def test_a_model_that_cannot_load_stops_the_run_and_the_same_command_resumes(executor, small_dataset, tmp_path,
                                                                             request):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    command = args(small_dataset, tmp_path / "out", executor, "--detector", "ppocr")
    env = {"TEXTSIEVE_PPOCR_MODEL": str(broken)}
    # on Ray, a job of the session's instance whose actors have the variable
    base = request.getfixturevalue("ray_env") if executor == "ray" else {}
    first = cli(*command, env=ray_job(base, env) if executor == "ray" else env)
    assert first.returncode == 4, first.stderr[-2000:]
    assert "could not be built" in first.stderr and "run the same command again" in first.stderr
    assert "detector_error" not in error_kinds(tmp_path / "out", "errors.jsonl.part")
    assert not (tmp_path / "out" / "summary.json").exists()
    fixed = cli(*command, env=base)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    counts = summary(tmp_path / "out")["counts"]
    assert counts["adds_up"] and counts["input"] == 9
    assert sorted(error_kinds(tmp_path / "out")) == ["empty_file", "missing_file", "unreadable"]


def test_the_same_detector_failure_on_sample_after_sample_stops_the_run(small_dataset, undisturbed, tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.setenv("TEXTSIEVE_FAULTS", json.dumps({"detector_error_on": [".mp4"]}))
    command = args(small_dataset, tmp_path / "out", "serial", "--failure-streak", "3")
    assert main(command) == 4
    err = capsys.readouterr().err
    assert "the detector failed the same way on 3 samples in a row" in err
    assert "injected detector error" in err and "none was recorded as an error" in err
    assert "detector_error" not in error_kinds(tmp_path / "out", "errors.jsonl.part")
    monkeypatch.delenv("TEXTSIEVE_FAULTS")
    assert main(command) == 0
    assert outputs(tmp_path / "out") == undisturbed


def test_failures_interleaved_with_successes_are_the_samples_own():
    def outcome(index: int, cause: str | None) -> SampleOutcome:
        if cause is None:
            return SampleOutcome(index, {}, "kept")
        failure = Failure(ErrorKind.DETECTOR_ERROR, f"v{index}: {cause}", f"v{index}", cause)
        return SampleOutcome(index, {}, "error", error=failure.record(), cause=cause)

    streak = FailureStreak(3)
    written = []
    for index, cause in enumerate(["a", "a", None, "a", "b", "a", "a"]):
        written += streak.feed(outcome(index, cause))
    written += streak.flush()
    assert sorted(o.index for o in written) == list(range(7))  # nothing lost, nothing stopped
    bad_file = SampleOutcome(9, {}, "error", error={"kind": "missing_file"})
    streak = FailureStreak(2)
    assert streak.feed(outcome(0, "a")) == [] and streak.feed(bad_file) == [bad_file]  # a bad file is neutral
    with pytest.raises(Exception, match="2 samples in a row"):
        streak.feed(outcome(1, "a"))


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_device_that_does_not_exist_is_refused_before_any_work(executor, small_dataset, tmp_path, request, capsys):
    if executor == "ray":
        request.getfixturevalue("ray_local")  # the session's instance: its nodes plan from their inventory
    assert main(args(small_dataset, tmp_path / "out", executor, "--device", "cuda:0")) == 2
    assert "--device cuda:0: no such GPU here" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_simulated_gpus_plan_as_if_real_and_run_on_the_cpu(executor, small_dataset, undisturbed, tmp_path):
    done = cli(*args(small_dataset, tmp_path / "out", executor, "--simulate-gpus", "16GiB:16GiB"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "simulated GPUs: planned as if they existed" in done.stderr
    assert outputs(tmp_path / "out") == undisturbed  # no column of detector_error
    result = summary(tmp_path / "out")
    if executor == "local":
        assert result["plan"]["simulated"] and result["plan"]["device_kind"] == "gpu"
        assert {r["device"] for r in result["detector"]["replicas"]} == {"cpu"}
    else:  # a local Ray instance shaped like the simulated machine: one GPU declared, placed as planned
        assert "the local Ray instance declares 1 GPU(s)" in done.stderr
        (node,) = result["executor_detail"]["nodes"]
        assert node["plan"]["simulated"] and node["plan"]["device_kind"] == "gpu"
        assert result["executor_detail"]["pools"][0]["num_gpus"] > 0


def test_a_missing_dataset_is_a_configuration_error_and_writes_nothing(tmp_path, capsys):
    assert main(["run", "--dataset", str(tmp_path / "nope.jsonl"), "--export", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.jsonl does not exist" in err[0]
    assert not (tmp_path / "out").exists()


# ---- recovering -----------------------------------------------------------------------

def test_retry_errors_judges_transient_errors_again_exactly_once(small_dataset, undisturbed, tmp_path, monkeypatch,
                                                                 capsys):
    command = args(small_dataset, tmp_path / "out", "serial")
    monkeypatch.setenv("TEXTSIEVE_FAULTS", json.dumps({"detector_error_on": ["v2.mp4"]}))
    assert main(command) == 0
    assert sorted(error_kinds(tmp_path / "out")) == ["detector_error", "empty_file", "missing_file", "unreadable"]
    monkeypatch.delenv("TEXTSIEVE_FAULTS")
    assert main(command) == 0  # without the flag, a finished run stays finished
    assert "already holds this run's finished outputs" in capsys.readouterr().out
    assert main([*command, "--retry-errors"]) == 0
    assert outputs(tmp_path / "out") == undisturbed
    result = summary(tmp_path / "out")
    assert result["retried_errors"] == 1 and result["this_session"]["samples"] == 1
    assert result["counts"] == {"input": 9, "kept": 3, "dropped": 3, "error": 3, "adds_up": True}
    assert main([*command, "--retry-errors"]) == 0  # the other errors are the files' own: nothing to retry
    assert "no transient errors to retry" in capsys.readouterr().out
    assert outputs(tmp_path / "out") == undisturbed


def test_retry_errors_on_a_run_that_stopped_part_way(small_dataset, tmp_path):
    """A run that stopped after committing a transient error and a file's
    own error: the retry takes back the first only, the rest resumes."""
    config = build_config(overrides={"dataset_path": str(small_dataset), "export_path": str(tmp_path / "out")}).config

    def error(index: int, kind: ErrorKind) -> SampleOutcome:
        return SampleOutcome(index, {"id": index}, "error", error=Failure(kind, f"sample {index}").record())

    collector = Collector(config, None, "serial")
    collector.add(SampleOutcome(0, {"id": 0}, "kept", ratios=[0.0]))
    collector.add(error(1, ErrorKind.TIMEOUT))
    collector.add(error(5, ErrorKind.MISSING_FILE))
    collector.commit()
    collector.abort()  # as a stop leaves it: parts and journal, no final files
    again = Collector(config, None, "serial", retry_errors=True)
    try:
        assert again.done == {0, 5} and again.output.retried == {1}
        errors = (tmp_path / "out" / "errors.jsonl.part").read_text()
        assert '"missing_file"' in errors and '"timeout"' not in errors
    finally:
        again.abort()


def test_an_export_folder_belongs_to_one_run_at_a_time(small_dataset, undisturbed, tmp_path, capsys):
    command = args(small_dataset, tmp_path / "out", "serial", "--decode-timeout-s", "600")
    holder = subprocess.Popen([sys.executable, "-m", "textsieve.cli", *command], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True,
                              env={**os.environ, "TEXTSIEVE_FAULTS": json.dumps({"hang_decode_on": ["v1.mp4"]})})
    try:
        lock = tmp_path / "out" / LOCK_FILE
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        t0 = time.monotonic()
        assert main(command) == 2
        assert time.monotonic() - t0 < 5  # at once, not after waiting
        err = capsys.readouterr().err
        assert f"in use by another textsieve run (pid {holder.pid} on host" in err
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    # the crash released the lock: the same command resumes and finishes
    assert main(command) == 0
    assert outputs(tmp_path / "out") == undisturbed


def test_decide_leaves_a_folder_that_run_still_recognises(small_dataset, tmp_path, capsys):
    command = args(small_dataset, tmp_path / "out", "serial")
    assert main(command) == 0
    assert main(["decide", "--export", str(tmp_path / "out"), "--max-area-ratio", "0.2"]) == 0
    capsys.readouterr()
    # the folder now holds 0.2's answers: a run at 0.05 is another run ...
    assert main(command) == 2
    assert "other settings (changed: filter.max_area_ratio)" in capsys.readouterr().err
    # ... and a run at 0.2 is this one, finished
    assert main([*command, "--max-area-ratio", "0.2"]) == 0
    assert "already holds this run's finished outputs" in capsys.readouterr().out


def test_a_full_disk_stops_the_run_with_one_line_and_the_same_command_resumes(tmp_path):
    """A real full disk: a 256 KiB tmpfs in a private mount namespace."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("needs a private mount namespace (unshare -m) to mount a small tmpfs")
    rows = 20_000
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text("".join(json.dumps({"text": f"sample {i} without videos"}) + "\n" for i in range(rows)))
    disk = tmp_path / "disk"
    disk.mkdir()
    run = f"{sys.executable} -m textsieve.cli run --dataset {dataset} --export {disk}/out --executor serial"
    script = f"""
        mount -t tmpfs -o size=256k tmpfs {disk} || exit 99
        {run} > {tmp_path}/first.out 2> {tmp_path}/first.err; echo $? > {tmp_path}/first.rc
        mount -o remount,size=64m {disk}
        {run} > {tmp_path}/second.out 2> {tmp_path}/second.err; echo $? > {tmp_path}/second.rc
        cp {disk}/out/kept.jsonl {disk}/out/summary.json {tmp_path}/
    """
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=600)
    if done.returncode == 99:
        pytest.skip("tmpfs cannot be mounted here")
    first_err = (tmp_path / "first.err").read_text()
    assert (tmp_path / "first.rc").read_text().strip() == "4", first_err[-2000:]
    stopped = [line for line in first_err.splitlines() if line.startswith("textsieve: stopped:")]
    assert len(stopped) == 1 and "the disk is full" in stopped[0] and "run the same command again" in stopped[0]
    assert "Traceback" not in first_err
    assert (tmp_path / "second.rc").read_text().strip() == "0", (tmp_path / "second.err").read_text()[-2000:]
    kept = [json.loads(line)["text"] for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert kept == [f"sample {i} without videos" for i in range(rows)]  # each exactly once, in order
    assert json.loads((tmp_path / "summary.json").read_text())["counts"]["adds_up"]
