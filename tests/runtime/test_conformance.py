"""One conformance matrix for every executor: the same dataset, the same
faults, the same outputs. Serial, local and Ray all place the shared sample
flow (runtime/flow.py); what differs is only where it runs, so every fault
must end the same way everywhere, and a transient one must leave no trace.

Ray runs on a real local cluster with the CPUs of this machine and no
declared GPU: the way a user on a laptop starts it.

Undisturbed runs and the cascade detect with CRAFT on every executor. The
faults detect with PP-OCR: they wrap the model from outside, whichever it
is, and a PP-OCR replica starts (and restarts, after a crash or a hang) in
under a second, where CRAFT's takes about 3 s of CPU in each Ray actor (importing
torch and EasyOCR).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from textsieve.cli import main

from runs import PPOCR, args, journal_done, outputs, summary

JUDGED = frozenset(range(5))  # the dataset's samples with videos that decode; the rest settle first
# The detect time limit of the hang tests. It must also cover the retried, real call: on a busy
# 2-core machine (the other pytest worker, Ray's workers starting) a 0.3 s CRAFT batch took over 5 s
# in CI and was stopped a second time, failing frames that should have been retried. A PP-OCR batch
# here takes about 0.05 s.
DETECT_LIMIT = "10"

ray = pytest.importorskip("ray")

EXECUTORS = ("serial", "local", "ray")


@pytest.fixture(scope="module")
def dataset(small_dataset) -> Path:
    return small_dataset


@pytest.fixture
def cluster(request, executor):
    """For the Ray executor, the session's local Ray instance (conftest.py), which runs in
    this process: its declared GPUs do not exist, so the replicas of a plan from the node's
    real inventory run on the CPU."""
    if executor == "ray":
        request.getfixturevalue("ray_local")


def run_in_process(monkeypatch, dataset, export, executor, faults: dict | None = None, *extra: str) -> int:
    """Through the CLI's own entry, in this process (Ray joins the module's cluster)."""
    if faults is None:
        monkeypatch.delenv("TEXTSIEVE_FAULTS", raising=False)
    else:
        monkeypatch.setenv("TEXTSIEVE_FAULTS", json.dumps(faults))
    return main(args(dataset, export, executor, *extra))


def run_cli(dataset, export, executor, faults: dict | None = None, *extra: str, timeout: float = 400):
    env = {**os.environ, "TEXTSIEVE_FAULTS": json.dumps(faults or {})}
    return subprocess.run([sys.executable, "-m", "textsieve.cli", *args(dataset, export, executor, *extra)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def serial_outputs(dataset: Path, out: Path, *extra: str) -> dict[str, str]:
    assert main(args(dataset, out, "serial", *extra)) == 0
    result = outputs(out)
    errors = [json.loads(line)["kind"] for line in result["errors.jsonl"].splitlines()]
    assert sorted(errors) == ["empty_file", "missing_file", "unreadable"]
    return result


@pytest.fixture(scope="module")
def undisturbed(dataset, tmp_path_factory) -> dict[str, str]:
    """The serial executor without faults: what every run must reproduce."""
    return serial_outputs(dataset, tmp_path_factory.mktemp("undisturbed") / "out")


@pytest.fixture(scope="module")
def undisturbed_fast(dataset, tmp_path_factory) -> dict[str, str]:
    """The same with PP-OCR: what every fault run must reproduce."""
    return serial_outputs(dataset, tmp_path_factory.mktemp("undisturbed-fast") / "out", *PPOCR)


def without(result: dict[str, str], index: int) -> dict[str, str]:
    """The outputs minus sample ``index``'s lines (its id is its index)."""
    def keep(name: str, line: str) -> bool:
        record = json.loads(line)
        return record.get("index" if name in ("stats.jsonl", "errors.jsonl") else "id") != index

    return {name: "".join(line for line in text.splitlines(keepends=True) if keep(name, line))
            for name, text in result.items()}


@pytest.mark.parametrize("executor", EXECUTORS)
class TestConformance:
    def test_undisturbed(self, executor, cluster, dataset, undisturbed, tmp_path, monkeypatch):
        assert run_in_process(monkeypatch, dataset, tmp_path / "out", executor) == 0
        assert outputs(tmp_path / "out") == undisturbed
        result = summary(tmp_path / "out")
        assert result["counts"] == {"input": 9, "kept": 3, "dropped": 3, "error": 3, "adds_up": True}
        assert result["executor"] == executor and result["resources"]["peak_host_rss_bytes"] > 0

    def test_transient_faults_leave_no_trace(self, executor, cluster, dataset, undisturbed_fast, tmp_path,
                                             monkeypatch):
        """A simulated out-of-memory (the batch halved), a replica that dies
        (replaced, its frames retried), a decoder that dies once (replaced,
        its video retried) and, in serial, a hung detector call (stopped, its
        frames retried): the outputs are the undisturbed ones. With workers,
        one run, in a fixed order: the first call runs out of memory and its
        retry (call 2) kills the replica. Serial is one process: the hang and
        the out-of-memory in one run, and a crash is the run's own, so the
        same command resumes it."""
        if executor == "serial":
            faults = {"hang_replica_calls": [1], "oom_calls": [2], "once_dir": str(tmp_path)}
            assert run_in_process(monkeypatch, dataset, tmp_path / "in-process", executor, faults, *PPOCR,
                                  "--detect-timeout-s", DETECT_LIMIT) == 0
            assert outputs(tmp_path / "in-process") == undisturbed_fast
            # a decoder dying is the same event here (the one process exits): one crash stands for both
            crashes = {"crash_replica_calls": [1], "once_dir": str(tmp_path)}
            codes = [run_cli(dataset, tmp_path / "out", executor, crashes, *PPOCR).returncode for _ in range(2)]
            assert codes == [71, 0], codes  # a crash stopped it, the same command finished it
            fired = {"replica-hang-1", "oom-2", "replica-crash-1"}
        else:
            faults = {"oom_calls": [1], "crash_replica_calls": [2], "crash_decode_on": ["v3.mp4"],
                      "once_dir": str(tmp_path)}
            assert run_in_process(monkeypatch, dataset, tmp_path / "out", executor, faults, *PPOCR) == 0
            # the replica that backed off died with its counters: the marker files say what fired
            assert summary(tmp_path / "out")["workers"]["restarts"]["replica"] == 1
            fired = {"oom-1", "replica-crash-2"}
            assert list(tmp_path.glob("decode-crash-*"))
        assert fired <= {p.name for p in tmp_path.iterdir()}  # every fault fired
        assert outputs(tmp_path / "out") == undisturbed_fast

    def test_faults_of_a_sample_are_that_samples_errors(self, executor, cluster, dataset, undisturbed_fast, tmp_path,
                                                       monkeypatch):
        """Each time, not once: the detector raising on one video's frames,
        a decoder hanging on one video (stopped, recorded as a timeout), and
        (not serial, where it is the run's own process) a decoder dying on one
        video every time (replaced, tried once more, then `worker_crashed`).
        Those samples alone are errors; the rest is as undisturbed."""
        faults = {"detector_error_on": ["v2.mp4"], "hang_decode_on": ["v1.mp4"]}
        if executor != "serial":
            faults["crash_decode_on"] = ["v3.mp4"]
        t0 = time.monotonic()
        code = run_in_process(monkeypatch, dataset, tmp_path / "out", executor, faults, *PPOCR, "--decode-timeout-s", "3")
        assert code == 0 and time.monotonic() - t0 < 200
        got = outputs(tmp_path / "out")
        errors = {json.loads(line)["index"]: json.loads(line) for line in got["errors.jsonl"].splitlines()}
        failed = {1: "timeout", 2: "detector_error", 4: "timeout"}  # 4 holds v1 too
        if executor != "serial":
            failed[3] = "worker_crashed"
            assert errors[3]["message"].endswith("v3.mp4: the decode worker died on it twice")
        assert {i: e["kind"] for i, e in errors.items() if i in failed} == failed
        assert "injected detector error on v2.mp4" in errors[2]["message"]
        assert errors[1]["message"].endswith("v1.mp4: decoding took over 3 s and was stopped")
        rest_got, rest_undisturbed = got, undisturbed_fast
        for index in failed:
            rest_got, rest_undisturbed = without(rest_got, index), without(rest_undisturbed, index)
        assert rest_got == rest_undisturbed
        assert summary(tmp_path / "out")["counts"]["adds_up"]

    def test_killed_then_resumed_gives_the_undisturbed_outputs(self, executor, dataset, undisturbed_fast, tmp_path,
                                                               request):
        """The command a user runs, killed whole (SIGKILL to its process
        group, the Ray instance it started included), then run again (on
        Ray, joined to the session's instance: the resume is the point, and
        starting one more instance costs 15-30 s on 2 cores)."""
        export = tmp_path / "out"
        cmd = [sys.executable, "-m", "textsieve.cli", *args(dataset, export, executor, *PPOCR)]
        # detection slowed down, so that the run is surely killed part-way
        slow = {**os.environ, "TEXTSIEVE_FAULTS": json.dumps({"slow_detect_s": 0.7})}
        log = tmp_path / "killed.log"
        with open(log, "w") as stderr:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True, env=slow)
        journal, deadline = export / "journal.jsonl", time.monotonic() + 240
        # killed once the journal holds a commit with a judged sample, before the end
        while proc.poll() is None and time.monotonic() < deadline and not journal_done(journal, JUDGED):
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done_before = journal_done(journal, JUDGED)
        assert 0 < done_before < 9 and not (export / "summary.json").exists()
        env = request.getfixturevalue("ray_env") if executor == "ray" else None
        final = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
        assert final.returncode == 0, final.stderr[-3000:]
        if executor == "ray":
            # no address, no declared GPU, as on a laptop: the command started a local Ray instance,
            # printed the plan first, and ran CPU actors that leave room for decoding
            killed = log.read_text()
            assert "Started a local Ray instance" in killed and "Ray node" in killed, killed[-3000:]
            assert "Ray pool: 1 detector actor(s), 0 GPU" in killed
        assert outputs(export) == undisturbed_fast
        assert summary(export)["resumed_with_done"] == done_before  # those were not judged again
        assert not list(export.glob("*.part"))


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_hung_replica_is_stopped_and_its_frames_retried(executor, cluster, dataset, undisturbed_fast, tmp_path,
                                                          monkeypatch):
    """A worker's hung call is stopped by killing its process (serial's, by
    the timer: in test_transient_faults_leave_no_trace). Apart from the other
    transient faults: a hang and a crash on the same frames would fail them,
    as a second loss should."""
    faults = {"hang_replica_calls": [1], "once_dir": str(tmp_path)}
    t0 = time.monotonic()
    assert run_in_process(monkeypatch, dataset, tmp_path / "out", executor, faults, *PPOCR,
                          "--detect-timeout-s", DETECT_LIMIT) == 0
    assert (tmp_path / "replica-hang-1").exists() and time.monotonic() - t0 < 200
    assert outputs(tmp_path / "out") == undisturbed_fast


@pytest.fixture(scope="module")
def cascade_calibration(tmp_path_factory) -> Path:
    """An identity map whose margin sends the videos with ppocr ratios in
    [0, 0.15] to CRAFT at max 0.05: here three of the four videos."""
    from textsieve.calibration import Calibration, save_calibration
    from textsieve.judging import Margins

    calibration = Calibration("ppocr", None, (0.0, 1.0), (0.0, 1.0), margins=Margins((0.05,), (0.1,), 0.99))
    return save_calibration(calibration, tmp_path_factory.mktemp("cascade") / "cal.json")


@pytest.fixture(scope="module")
def cascade_reference(dataset, cascade_calibration, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("cascade-serial") / "out"
    assert main(args(dataset, out, "serial", "--detector", "cascade", "--calibration", str(cascade_calibration))) == 0
    sent = summary(out)["ratios"]["cascade"]["decided_by"]
    # some videos settled by ppocr, some re-judged by CRAFT: both routes are exercised
    assert sent["ppocr"] >= 1 and sent["craft"] >= 1 and sent["ppocr"] + sent["craft"] == 6
    return outputs(out)


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_the_cascade_routes_the_same_way_on_every_executor(executor, cluster, dataset, cascade_calibration,
                                                           cascade_reference, tmp_path, monkeypatch):
    assert run_in_process(monkeypatch, dataset, tmp_path / "out", executor, None, "--detector", "cascade",
                          "--calibration", str(cascade_calibration)) == 0
    assert outputs(tmp_path / "out") == cascade_reference
