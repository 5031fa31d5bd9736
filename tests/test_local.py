"""The local executor: real decode and replica processes, injected faults,
kills, resume. Its outputs must equal the serial executor's."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import psutil
import pytest

from textsieve.config import build_config
from textsieve.detect.area import Detections
from textsieve.errors import ConfigError
from textsieve.runtime.batching import BatchSizer, SimulatedOOM, detect_with_backoff
from textsieve.runtime.local import LocalExecutor
from textsieve.runtime.monitor import ResourceMonitor
from textsieve.runtime.planning import plan_for
from textsieve.runtime.serial import run_serial
from textsieve.runtime.workers import Faults
from textsieve.synthetic import TextBlock, VideoSpec, write_video

OUTPUTS = ("kept.jsonl", "dropped.jsonl", "errors.jsonl", "stats.jsonl")
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
                 "batch_size": 4, **extra}
    return build_config(overrides=overrides)


def outputs(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in OUTPUTS}


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> dict[str, str]:
    """The serial executor's outputs: what every other run must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "serial"
    cfg = config(dataset, out)
    run_serial(cfg)
    return outputs(out)


def run_local(cfg, faults=None, **kwargs) -> dict:
    _, plan = plan_for(cfg)
    return LocalExecutor(cfg, plan, faults=faults or Faults(), **kwargs).run()


def test_local_equals_serial(dataset, reference, tmp_path):
    summary = run_local(config(dataset, tmp_path / "out"))
    assert outputs(tmp_path / "out") == reference
    assert summary["counts"] == {"input": 10, "kept": 4, "dropped": 4, "error": 2, "adds_up": True}
    assert summary["workers"]["restarts"] == {"decode": 0, "replica": 0}
    assert summary["resources"]["peak_host_rss_bytes"] > 0


def test_injected_out_of_memory_halves_and_retries_the_same_frames(dataset, reference, tmp_path):
    # call 1: batch 4 fails -> 2; call 3: batch 2 fails -> 1; the same frames are retried
    run_local(config(dataset, tmp_path / "out"), Faults(oom_calls=(1, 3)))
    assert outputs(tmp_path / "out") == reference


def test_out_of_memory_at_batch_one_is_recorded_as_gpu_oom(dataset, tmp_path):
    # 4 -> 2 -> 1, and batch 1 fails too: a CPU replica has no CPU to fall back to
    summary = run_local(config(dataset, tmp_path / "out"), Faults(oom_calls=(1, 2, 3)))
    errors = [json.loads(l) for l in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in errors].count("gpu_oom") == 1
    assert "batch size 1" in next(e for e in errors if e["kind"] == "gpu_oom")["message"]
    assert summary["counts"]["adds_up"] and summary["counts"]["error"] == 3


def test_decode_timeout_kills_the_decoder_and_the_run_goes_on(dataset, reference, tmp_path):
    cfg = config(dataset, tmp_path / "out", decode_timeout_s=3)
    t0 = time.monotonic()
    summary = run_local(cfg, Faults(hang_decode_on=("v3.mp4",)))
    assert time.monotonic() - t0 < 120
    errors = [json.loads(l) for l in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert {e["id"] if "id" in e else e["sample"]["id"]: e["kind"] for e in errors}[3] == "timeout"
    assert summary["counts"]["adds_up"] and summary["counts"]["error"] == 3
    # everything else is as in the reference
    kept_ref = [l for l in reference["kept.jsonl"].splitlines() if '"id": 3' not in l]
    assert (tmp_path / "out" / "kept.jsonl").read_text().splitlines() == kept_ref


def test_crashing_decoder_is_replaced_and_the_video_retried_once(dataset, tmp_path):
    summary = run_local(config(dataset, tmp_path / "out"), Faults(crash_decode_on=("v2.mp4",)))
    errors = {e["sample"]["id"]: e for e in map(json.loads, (tmp_path / "out" / "errors.jsonl").read_text().splitlines())}
    assert errors[2]["kind"] == "worker_crashed" and "twice" in errors[2]["message"]
    assert summary["workers"]["restarts"]["decode"] == 2
    assert summary["counts"]["adds_up"] and summary["counts"]["error"] == 3


def test_crashing_replica_is_restarted_and_its_batch_retried(dataset, reference, tmp_path):
    summary = run_local(config(dataset, tmp_path / "out"), Faults(crash_replica_calls=(2,), once_dir=str(tmp_path)))
    assert summary["workers"]["restarts"]["replica"] == 1
    assert outputs(tmp_path / "out") == reference


def test_random_worker_kills_never_hang_the_run(dataset, tmp_path):
    export = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(dataset), "--export", str(export),
         "--batch-size", "2", "--max-area-ratio", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    rng = random.Random(7)
    kills = []

    def killer():
        time.sleep(4)
        while proc.poll() is None and len(kills) < 4:
            children = psutil.Process(proc.pid).children(recursive=True)
            if children:
                victim = rng.choice(children)
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


@pytest.mark.parametrize("kill_after", [[5.0], [7.0, 6.0], [9.0, 4.0, 6.0]])
def test_resume_after_sigkill_gives_the_uninterrupted_outputs(dataset, reference, tmp_path, kill_after):
    export = tmp_path / "out"
    cmd = [sys.executable, "-m", "textsieve.cli", "run", "--dataset", str(dataset), "--export", str(export),
           "--batch-size", "4", "--max-area-ratio", "0.05"]
    for delay in kill_after:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole run: supervisor and workers
        proc.wait()
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    assert outputs(export) == reference
    assert not list(export.glob("*.part"))


def test_changed_settings_refuse_to_resume_unless_restarted(dataset, reference, tmp_path):
    export = tmp_path / "out"
    run_local(config(dataset, export))
    with pytest.raises(ConfigError, match="filter.max_area_ratio"):
        run_local(config(dataset, export, **{"filter.max_area_ratio": 0.2}))
    run_local(config(dataset, export), restart=True)
    assert outputs(export) == reference


def test_decide_equals_a_fresh_run_at_the_new_threshold(dataset, tmp_path):
    from textsieve.cli import main

    run_serial(config(dataset, tmp_path / "a"))
    assert main(["decide", "--export", str(tmp_path / "a"), "--max-area-ratio", "0.2"]) == 0
    run_serial(config(dataset, tmp_path / "b", **{"filter.max_area_ratio": 0.2}))
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["redecided"][-1]["max_area_ratio"] == 0.2 and summary["counts"]["adds_up"]


# ---- pure parts ---------------------------------------------------------------

def fake_detect(limit: int, calls: list):
    def detect(images):
        calls.append(len(images))
        if len(images) > limit:
            raise SimulatedOOM()
        return [Detections(horizontal=[[0, 1, 0, 1]]) for _ in images]
    return detect


def test_backoff_halves_until_it_fits_then_grows_back_slowly():
    calls: list[int] = []
    sizer = BatchSizer(8, grow_after=2)
    out = detect_with_backoff([None] * 8, fake_detect(3, calls), sizer)
    assert all(isinstance(d, Detections) for d in out)
    # halved twice to 2; two clean batches grow it to 3, two more to 4
    assert calls == [8, 4, 2, 2, 3, 1] and sizer.current == 4
    calls.clear()
    detect_with_backoff([None] * 9, fake_detect(100, calls), sizer)
    assert calls == [4, 4, 1] and sizer.current == 5


def test_backoff_at_one_frame_uses_the_cpu_or_records_gpu_oom():
    cpu_calls: list[int] = []
    out = detect_with_backoff([None] * 3, fake_detect(0, []), BatchSizer(4), fallback=fake_detect(100, cpu_calls))
    assert all(isinstance(d, Detections) for d in out) and cpu_calls == [1, 1, 1]
    out = detect_with_backoff([None] * 2, fake_detect(0, []), BatchSizer(2))
    assert [r["kind"] for r in out] == ["gpu_oom", "gpu_oom"]


def test_non_oom_errors_propagate():
    def broken(images):
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        detect_with_backoff([None], broken, BatchSizer(1))


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
