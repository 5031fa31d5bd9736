"""Frames in shared memory: the pool's bookkeeping, and no segment left
behind however a run ends (finished, a worker killed, the whole run killed).

The whole runs use cheap detectors: what is tested is how frames travel and
what is left in /dev/shm, not the detector (the conformance suite runs the
local executor, frames in shared memory, with CRAFT). The CLI's runs use
ppocr, whose replica starts in a fraction of CRAFT's time (each killed one
is replaced); the transports are compared with ``red``
(textsieve.testing), whose ratio is each frame's mean red level: a frame
that arrived otherwise would show in the outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from runs import PPOCR, args, outputs, workers_of
from textsieve.cli import main
from textsieve.runtime.shm import PREFIX, SHM_DIR, FramePool, SharedFrame, pool_size, sweep_stale

pytestmark = pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason="no /dev/shm")




def segments_of(pid: int) -> list[str]:
    return [name for name in os.listdir(SHM_DIR) if name.startswith(f"{PREFIX}{pid}-")]


def test_slots_carry_frames_in_place_and_come_back():
    pool = FramePool.create(slots=3, slot_bytes=12 * 10 * 3)
    try:
        frame = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
        big = np.zeros((20, 20, 3), np.uint8)
        slots = pool.acquire(2)
        assert slots is not None and pool.acquire(2) is None  # one left
        handles = pool.put_all(slots, [frame, big])
        assert isinstance(handles[0], SharedFrame) and handles[1] is big  # too large for a slot: stays an array
        other = FramePool.attach(pool.name, 3, pool.slot_bytes)  # as a worker sees it
        assert np.array_equal(other.resolve(handles[0]), frame)
        other.close()
        pool.hold(slots, handles)
        pool.drop(handles[0])
        assert sorted(pool.free) == [0, 1, 2]
    finally:
        pool.close()
    assert not segments_of(os.getpid())


def test_small_frames_pack_into_a_slot_which_frees_with_its_last_frame():
    frame_bytes = 10 * 12 * 3  # 360, 384 once aligned
    pool = FramePool.create(slots=3, slot_bytes=4 * 384)
    try:
        rng = np.random.default_rng(1)
        frames = [rng.integers(0, 255, (10, 12, 3), dtype=np.uint8) for _ in range(6)]
        granted = pool.acquire(2)
        handles = pool.put_all(granted, frames)
        # four to the first slot, two to the second, in order, each at its own offset
        assert [(h.slot, h.offset) for h in handles] == [(granted[0], o) for o in (0, 384, 768, 1152)] + [
            (granted[1], 0), (granted[1], 384)]
        assert all(np.array_equal(pool.resolve(h), f) for h, f in zip(handles, frames))
        # past the room given, a frame crosses the pipe as an array
        more = pool.put_all(granted[:1], frames[:5])
        assert isinstance(more[4], np.ndarray) and all(isinstance(h, SharedFrame) for h in more[:4])
        pool.hold(granted, handles)
        assert sorted(pool.free) == [s for s in range(3) if s not in granted]
        for handle in handles[:4]:
            pool.drop(handle)  # the first slot's last frame frees it
        assert granted[0] in pool.free and granted[1] not in pool.free
        pool.drop(handles[4])
        pool.drop(handles[5])
        assert sorted(pool.free) == [0, 1, 2] and frame_bytes == frames[0].nbytes
    finally:
        pool.close()


def test_the_pool_fits_the_budget_and_the_shared_memory_it_has(tmp_path):
    stat = os.statvfs(SHM_DIR)
    fit = int(stat.f_bavail * stat.f_frsize * 0.8) // (6 << 20)
    slots, why = pool_size(512 << 20, 6 << 20, 3)
    assert slots == min(85, fit)  # the budget's worth, or what /dev/shm holds
    # a shared-memory file system too small for one video's frames: the pipes carry them
    stat = os.statvfs(tmp_path)
    room = stat.f_bavail * stat.f_frsize
    assert pool_size(room * 4, room, 3, directory=str(tmp_path))[0] == 0


def test_stale_segments_of_dead_runs_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{PREFIX}{dead.stdout.strip()}-abcd"
    live = tmp_path / f"{PREFIX}{os.getpid()}-abcd"
    other = tmp_path / "someone-elses"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    assert sweep_stale(str(tmp_path)) == [stale.name]
    assert live.exists() and other.exists() and not stale.exists()


def test_pipe_and_shared_memory_transports_give_identical_outputs(small_dataset, tmp_path):
    from textsieve import testing
    from textsieve.recipe import build_config
    from textsieve.runtime.lifecycle import RunSetup
    from textsieve.runtime.local import LocalExecutor

    for transport in ("pipe", "shm"):
        config = build_config(overrides={"dataset_path": str(small_dataset), "export_path": str(tmp_path / transport),
                                         "filter.max_area_ratio": 0.05, "batch_size": 4}).config
        summary = LocalExecutor(RunSetup.resolve(testing.with_detector(config, "red")), transport=transport).run()
        assert ("shared memory" in summary.workers.frame_transport) == (transport == "shm")
    assert outputs(tmp_path / "pipe") == outputs(tmp_path / "shm")
    # the frames' own levels were measured: the ratios differ from video to video
    stats = [json.loads(line) for line in outputs(tmp_path / "shm")["stats.jsonl"].splitlines()]
    assert len({v["ratio"] for r in stats for v in r["videos"]}) >= 3
    assert not segments_of(os.getpid())


def test_no_segment_outlives_a_run_whose_workers_are_killed(small_dataset, tmp_path):
    command = [sys.executable, "-m", "textsieve.cli",
               *args(small_dataset, tmp_path / "out", "local", *PPOCR, "--batch-size", "1")]
    # detection slowed down (0.2 s a frame, one frame a call): the run outlasts both kills
    slow = {**os.environ, "TEXTSIEVE_FAULTS": json.dumps({"slow_detect_s": 0.2})}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=slow)
    killed = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and killed < 2 and time.monotonic() < deadline:
        workers = workers_of(proc.pid)
        if len(workers) >= 2 and segments_of(proc.pid):
            victim = workers[killed]
            os.kill(victim.pid, signal.SIGKILL)  # a decoder, then a replica: each is replaced
            killed += 1
            # until the run has noticed (reaped it); the next kill waits for its replacement (two workers)
            psutil.wait_procs([victim], timeout=30)
        time.sleep(0.2)
    assert proc.wait(timeout=300) == 0 and killed == 2
    assert not segments_of(proc.pid)


def test_a_killed_run_leaves_no_segment_once_it_resumes(small_dataset, undisturbed_local, tmp_path):
    """The whole process group killed (its resource tracker too): the segment
    is orphaned, and the next run, resuming, removes it."""
    command = [sys.executable, "-m", "textsieve.cli", *args(small_dataset, tmp_path / "out", "local", *PPOCR)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not segments_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert segments_of(proc.pid), "the run never created its frame pool"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(args(small_dataset, tmp_path / "out", "local", *PPOCR)) == 0
    assert not segments_of(proc.pid)
    assert outputs(tmp_path / "out") == undisturbed_local


@pytest.fixture(scope="module")
def undisturbed_local(small_dataset, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("undisturbed") / "out"
    assert main(args(small_dataset, out, "serial", *PPOCR)) == 0
    return outputs(out)


RUN_WITH_A_POOL_OF_ONE_VIDEO = """
import sys
from textsieve import testing
from textsieve.recipe import build_config
from textsieve.runtime.lifecycle import RunSetup
from textsieve.runtime.local import LocalExecutor
from textsieve.runtime.planning import plan_for
config = testing.null_config(build_config(overrides={"dataset_path": sys.argv[1], "export_path": sys.argv[2]}).config)
_, plan = plan_for(config)
plan.decoders = 3
# slots sized for 1080p, a budget of three of them: the pool holds the
# executor's minimum, two videos' frames (6 slots), so a third decoder waits
# for slots while the (small) decoded frames stay far below the byte budget
summary = LocalExecutor(RunSetup.resolve(config, plan), buffer_bytes=3 * 1920 * 1080 * 3).run()
assert summary.workers.frame_transport.startswith("6 slot(s)"), summary.workers.frame_transport
print(summary.counts.adds_up)
"""


def test_decoding_waits_for_slots_while_replicas_give_them_back(small_dataset, tmp_path):
    """A full pool stops decoding, never detection: the frames at the
    replicas are what free the slots (this once hung for ever)."""
    done = subprocess.run([sys.executable, "-c", RUN_WITH_A_POOL_OF_ONE_VIDEO, str(small_dataset), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("True")
