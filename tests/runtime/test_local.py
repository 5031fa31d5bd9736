"""The local executor beyond the conformance matrix (tests/runtime/test_conformance.py):
random kills of its workers, repeated kills of the whole run, a batch-1
out-of-memory, changed settings, decide; and the replica's backoff against
an injected model.

The runs here detect with ppocr: what they test is how runs are killed,
resumed, refused and re-decided, not the detector, and a ppocr replica
starts (and restarts, after each kill) in a fraction of CRAFT's time; the
conformance suite's undisturbed runs use CRAFT on every executor. Runs whose
subject is not the local executor's processes run on the serial executor."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import psutil
import pytest

from textsieve.cli import main
from textsieve.recipe import build_config
from textsieve.detect.area import Detections
from textsieve.errors import ConfigError
from textsieve.errors import ErrorKind, Failure
from textsieve.resources.planner import Replica
from textsieve.runtime.batching import SimulatedOOM
from textsieve.runtime.faults import Faults
from textsieve.runtime.flow import DetectorReplica, FrameKey, ModelSpec, ReplicaSpec
from textsieve.runtime.monitor import ResourceMonitor
from textsieve.runtime.lifecycle import RunSetup
from textsieve.runtime.serial import SerialExecutor
from textsieve.synthetic import TextBlock, VideoSpec, write_video

from runs import journal_done, outputs, workers_of

SMALL = dict(width=240, height=180, frames=10, gop=5, fps=Fraction(10))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("local")
    texts = ["Hello world", "", "Caption text", "Big TITLE", "", "More words here"]
    rows = []
    for i, text in enumerate(texts):
        blocks = (TextBlock(text, 10, 70 + 5 * i, size=22 + 2 * i),) if text else ()
        write_video(d / f"v{i}.mp4", VideoSpec(**SMALL, blocks=blocks))
        rows.append({"id": i, "videos": [f"v{i}.mp4"]})
    (d / "zero.mp4").write_bytes(b"")
    rows += [
        {"id": "pair", "videos": ["v0.mp4", "v1.mp4", "v0.mp4"]},
        {"id": "missing", "videos": ["nope.mp4"]},
        {"id": "empty", "videos": []},
        {"id": "zero", "videos": ["zero.mp4"]},
    ]
    path = d / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(dataset: Path, export: Path, **extra):
    overrides = {"dataset_path": str(dataset), "export_path": str(export), "filter.max_area_ratio": 0.05,
                 "filter.detector": "ppocr", "batch_size": 4, **extra}
    return build_config(overrides=overrides).config


@pytest.fixture(scope="module")
def reference_run(dataset, tmp_path_factory) -> Path:
    """A finished serial run's folder (copy it to work on it)."""
    out = tmp_path_factory.mktemp("ref") / "serial"
    SerialExecutor(RunSetup.resolve(config(dataset, out))).run()
    return out


@pytest.fixture(scope="module")
def reference(reference_run) -> dict[str, str]:
    """The serial executor's outputs: what every other run must reproduce."""
    return outputs(reference_run)


def run_serial(cfg, restart: bool = False):
    return SerialExecutor(RunSetup.resolve(cfg, restart=restart)).run()


def test_out_of_memory_at_batch_one_is_recorded_as_gpu_oom(dataset, tmp_path):
    # 4 -> 2 -> 1, and batch 1 fails too: a CPU replica has no CPU to fall back to. The backoff is
    # DetectorReplica's, which every executor runs (serial in its own process: no replica process to
    # start); that a local replica's failures reach the outputs as serial's do is the conformance suite's
    summary = SerialExecutor(RunSetup.resolve(config(dataset, tmp_path / "out"),
                                              faults=Faults(oom_calls=(1, 2, 3)))).run()
    errors = [json.loads(l) for l in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in errors].count("gpu_oom") == 1
    assert "batch size 1" in next(e for e in errors if e["kind"] == "gpu_oom")["message"]
    assert summary.counts.adds_up and summary.counts.error == 3


def test_random_worker_kills_never_hang_the_run(dataset, tmp_path):
    export = tmp_path / "out"
    # detection slowed down (0.3 s a call, as CRAFT's own pace on a CPU is slower still): every kill lands
    # while the run has work left
    slow = {**os.environ, "TEXTSIEVE_FAULTS": json.dumps({"slow_detect_s": 0.3})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(dataset), "--export", str(export),
         "--batch-size", "2", "--max-area-ratio", "0.05", "--detector", "ppocr"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=slow,
    )
    rng = random.Random(7)
    kills = []

    def killer():
        # from the moment the run has workers (not a fixed wait: the start takes 3-30 s with the load),
        # a random one every 1-3 s
        while proc.poll() is None and not workers_of(proc.pid):
            time.sleep(0.1)
        while proc.poll() is None and len(kills) < 4:
            alive = workers_of(proc.pid)
            if alive:
                victim = rng.choice(alive)
                try:
                    victim.send_signal(signal.SIGKILL)
                    kills.append(victim.pid)
                except psutil.Error:
                    pass
            time.sleep(rng.uniform(1.0, 3.0))

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
        thread.join()
    assert proc.returncode == 0, out[-3000:]
    assert kills
    summary = json.loads((export / "summary.json").read_text())
    assert summary["counts"]["adds_up"] and summary["counts"]["input"] == 10
    ids = []
    for name in ("kept.jsonl", "dropped.jsonl"):
        ids += [json.loads(l)["id"] for l in (export / name).read_text().splitlines()]
    ids += [json.loads(l)["sample"]["id"] for l in (export / "errors.jsonl").read_text().splitlines()]
    assert sorted(map(str, ids)) == sorted(map(str, [0, 1, 2, 3, 4, 5, "pair", "missing", "empty", "zero"]))


def test_a_killed_supervisor_leaves_no_worker_behind(dataset, tmp_path):
    """Workers are forks of a fork server, which lives while any of them
    does: the supervisor killed while its replica hangs in a detector call
    (it would never read its pipe again), every process of the run ends."""
    marks = tmp_path / "marks"
    marks.mkdir()
    hang = {**os.environ, "TEXTSIEVE_FAULTS": json.dumps({"hang_replica_calls": [1], "once_dir": str(marks)})}
    proc = subprocess.Popen([sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(dataset), "--export",
                             str(tmp_path / "out"), "--max-area-ratio", "0.05", "--detector", "ppocr"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=hang)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not (marks / "replica-hang-1").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (marks / "replica-hang-1").exists(), "the replica never reached its hung call"
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert len(workers) >= 3  # the fork server, a decoder, the replica (and the resource tracker)
    proc.kill()  # the supervisor alone: SIGKILL, no chance to stop anything
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]


def test_resume_after_repeated_sigkills_gives_the_uninterrupted_outputs(dataset, reference, tmp_path, monkeypatch):
    """Killed whole twice, each once the journal shows more judged
    samples than at the last kill (so each kill lands part-way, and each run
    made progress), then run to the end: the uninterrupted outputs."""
    export, journal = tmp_path / "out", tmp_path / "out" / "journal.jsonl"
    cmd = [sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(dataset), "--export", str(export),
           "--batch-size", "1", "--max-area-ratio", "0.05", "--detector", "ppocr"]
    # detection slowed down, so that every kill lands while samples are left
    slow = {**os.environ, "TEXTSIEVE_FAULTS": json.dumps({"slow_detect_s": 0.5})}
    judged = frozenset(range(7))  # the samples with videos that decode; the bad ones settle first
    at_kill = [0]
    for _ in range(2):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env=slow)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline and journal_done(journal, judged) <= at_kill[-1]:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it was killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run: supervisor and workers
        proc.wait()
        at_kill.append(journal_done(journal, judged))
    assert at_kill == sorted(set(at_kill)) and at_kill[-1] < 10 and not (export / "summary.json").exists()
    # the same command, to the end, through the CLI's entry in this process (no faults): no second
    # import of the model libraries
    monkeypatch.delenv("TEXTSIEVE_FAULTS", raising=False)
    assert main(cmd[3:]) == 0
    assert outputs(export) == reference
    assert json.loads((export / "summary.json").read_text())["resumed_with_done"] == at_kill[-1]
    assert not list(export.glob("*.part"))


def test_changed_settings_refuse_to_resume_unless_restarted(dataset, reference_run, reference, tmp_path):
    """The settings' check and --restart are the run's (RunSetup, the collector), the same in
    every executor: on a copy of the finished reference run, with the serial executor."""
    export = tmp_path / "out"
    shutil.copytree(reference_run, export)
    with pytest.raises(ConfigError, match="filter.max_area_ratio"):
        run_serial(config(dataset, export, **{"filter.max_area_ratio": 0.2}))
    assert outputs(export) == reference  # refused before touching anything
    run_serial(config(dataset, export), restart=True)
    assert outputs(export) == reference


def test_decide_equals_a_fresh_run_at_the_new_threshold(dataset, reference_run, tmp_path):
    shutil.copytree(reference_run, tmp_path / "a")  # a finished run at 0.05
    assert main(["decide", "--export", str(tmp_path / "a"), "--max-area-ratio", "0.2"]) == 0
    SerialExecutor(RunSetup.resolve(config(dataset, tmp_path / "b", **{"filter.max_area_ratio": 0.2}))).run()
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["redecided"][-1]["max_area_ratio"] == 0.2 and summary["counts"]["adds_up"]


# ---- the replica's backoff, against an injected model ------------------------------

def fake_detect(limit: int | list[int], calls: list):
    """A model that runs out of memory above ``limit`` frames (a list: changeable)."""
    def detect(images):
        calls.append(len(images))
        if len(images) > (limit[0] if isinstance(limit, list) else limit):
            raise SimulatedOOM()
        return [Detections(horizontal=[[0, 1, 0, 1]]) for _ in images]
    return detect


def replica(batch: int, gpu, cpu=None, device: str = "cuda:0", faults: Faults = Faults(),
            cpu_fallback: bool = True) -> DetectorReplica:
    spec = ReplicaSpec((ModelSpec("craft"),), Replica(device, None, 1), batch, cpu_fallback)
    return DetectorReplica(spec, spec.models[0], faults, build=lambda dev: gpu if dev == device else cpu)


def keys(n: int, path: str = "v.mp4") -> list[FrameKey]:
    return [FrameKey(0, path, i) for i in range(n)]


def test_backoff_halves_until_it_fits_then_grows_back_slowly():
    calls: list[int] = []
    limit = [3]
    r = replica(8, fake_detect(limit, calls))
    r.sizer.grow_after = 2
    out = r.detect(keys(8), [None] * 8)
    assert all(isinstance(d, Detections) for d in out)
    # halved twice to 2; two clean batches grow it to 3, two more to 4
    assert calls == [8, 4, 2, 2, 3, 1] and r.sizer.current == 4 and r.counters.oom_backoffs == 2
    calls.clear()
    limit[0] = 100
    r.detect(keys(9), [None] * 9)
    assert calls == [4, 4, 1] and r.sizer.current == 5


def test_backoff_at_one_frame_uses_the_cpu_or_records_gpu_oom():
    cpu_calls: list[int] = []
    r = replica(4, fake_detect(0, []), cpu=fake_detect(100, cpu_calls))
    out = r.detect(keys(3), [None] * 3)
    assert all(isinstance(d, Detections) for d in out) and cpu_calls == [1, 1, 1]
    assert r.counters.cpu_fallback_frames == 3
    out = replica(2, fake_detect(0, []), cpu_fallback=False).detect(keys(2), [None] * 2)
    assert [r.kind for r in out] == [ErrorKind.GPU_OOM, ErrorKind.GPU_OOM]
    assert out[0].cause == out[1].cause  # the same failure reads the same: the streak guard sees it


def test_a_detector_exception_fails_only_the_frames_that_raise():
    def broken_on_odd(images):
        if any(i is not None and i % 2 for i in images):
            raise ValueError("bad input 12x34")
        return [Detections() for _ in images]

    out = replica(4, broken_on_odd, device="cpu").detect(keys(4), [0, 1, 2, 3])
    assert [type(r).__name__ for r in out] == ["Detections", "Failure", "Detections", "Failure"]
    assert out[1].kind == ErrorKind.DETECTOR_ERROR and out[1].cause == "ValueError: bad input NxN"


def test_injected_faults_fire_at_their_calls_and_paths(tmp_path):
    calls: list[int] = []
    faults = Faults(oom_calls=(1,), detector_error_on=("bad",), once_dir=str(tmp_path))
    r = replica(2, fake_detect(100, calls), device="cpu", faults=faults)
    assert all(isinstance(d, Detections) for d in r.detect(keys(2), [None] * 2))
    assert r.counters.oom_backoffs == 1 and (tmp_path / "oom-1").exists()
    # once: the frame raises the first time, then the retry one by one succeeds
    out = r.detect(keys(2, "/x/bad.mp4"), [None] * 2)
    assert all(isinstance(d, Detections) for d in out)
    always = replica(1, fake_detect(100, []), device="cpu", faults=Faults(detector_error_on=("bad",)))
    failed = always.detect(keys(1, "/x/bad.mp4"), [None])
    assert isinstance(failed[0], Failure) and "injected detector error on bad.mp4" in failed[0].message


def test_monitor_records_peaks_and_reserve_breaches():
    frees = iter([70, 40, 3, 20] + [20] * 100)

    def query():
        return [{"index": 0, "name": "sim", "total": 80, "free": next(frees)}]

    monitor = ResourceMonitor(query, reserves={0: 4}, interval_s=0.01).start()
    time.sleep(0.2)
    monitor.stop()
    report = monitor.report()
    assert report["gpus"]["0"]["peak_used_bytes"] == 77
    assert report["gpus"]["0"]["came_within_reserve"] is True
