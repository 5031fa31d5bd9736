"""Time limits and injected faults at the flow's edges: a limit holds in any
thread, and faults wrap what they disturb from outside (none set: the very
function or model given)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import textsieve.runtime
from textsieve.runtime.batching import SimulatedOOM
from textsieve.runtime.faults import Faults
from textsieve.runtime.flow import Deadline, FrameKey, within


def _in_thread(fn):
    box = []
    thread = threading.Thread(target=lambda: box.append(_outcome(fn)))
    thread.start()
    thread.join(30)
    return box[0]


def _outcome(fn):
    try:
        return ("value", fn())
    except BaseException as exc:
        return ("raised", exc)


@pytest.mark.parametrize("where", ["main", "worker"])
def test_a_limit_stops_waiting_in_any_thread(where):
    run = (lambda fn: _outcome(fn)) if where == "main" else _in_thread
    started = time.monotonic()
    kind, got = run(lambda: within(0.3, time.sleep, 30))
    assert kind == "raised" and isinstance(got, Deadline)
    assert time.monotonic() - started < 10
    assert run(lambda: within(5, sum, [1, 2])) == ("value", 3)
    kind, got = run(lambda: within(5, int, "x"))
    assert kind == "raised" and isinstance(got, ValueError)


def test_no_fault_set_wraps_nothing():
    def decode(task, *args):
        return task

    def model(keys, images):
        return list(images)

    assert Faults().decoder(decode) is decode
    assert Faults().detector(model) is model


def test_detector_faults_count_calls_and_match_paths(tmp_path):
    faults = Faults(oom_calls=(2,), detector_error_on=("bad.mp4",), once_dir=str(tmp_path))
    model = faults.detector(lambda keys, images: ["ok"] * len(images))
    good, bad = FrameKey(0, "/d/good.mp4", 0), FrameKey(1, "/d/bad.mp4", 0)
    assert model([good], [None]) == ["ok"]
    with pytest.raises(SimulatedOOM):
        model([good], [None])  # the second call
    assert model([good], [None]) == ["ok"]
    with pytest.raises(RuntimeError, match="injected detector error on bad.mp4"):
        model([bad], [None])
    assert model([bad], [None]) == ["ok"]  # once_dir: each fault fires once


def test_production_code_holds_no_fault_branch():
    """Only runtime/faults.py exits or sleeps on purpose: the flow and the
    executors are the code that runs for users."""
    root = Path(textsieve.runtime.__file__).parent
    for path in root.glob("*.py"):
        if path.name != "faults.py":
            text = path.read_text()
            assert "os._exit(" not in text and "sleep(10**6)" not in text, path
