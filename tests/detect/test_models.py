"""Model registry and profiling: models are built only where they are used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from textsieve.detect import registry
from textsieve.errors import ConfigError
from textsieve.resources.inventory import GiB
from textsieve.resources.planner import ModelCost
from textsieve.resources.profile import cost_for


def test_prepare_builds_nothing_and_get_caches():
    registry.release()
    key = registry.prepare("craft")
    assert registry.loaded() == []
    model = registry.get(key, "cpu")
    assert registry.get(key, "cpu") is model
    assert registry.loaded() == [(key, "cpu")]
    registry.release(key)
    assert registry.loaded() == []


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown detector"):
        registry.prepare("tesseract")


PARENT_SCRIPT = r"""
import json, os, sys
from textsieve.recipe import build_config
from textsieve.detect import registry
from textsieve.resources.profile import measure
from textsieve.runtime.planning import plan_for

inventory, plan = plan_for(build_config(overrides={"simulate_gpus": "80GiB:70GiB", "plan_frame_size": "320x240", "batch_size": 2}).config)
result = measure("craft", {}, "cpu", 2, 320, 240)
print(json.dumps({
    "parent_pid": os.getpid(),
    "child_pid": result["pid"],
    "loaded_in_parent": len(registry.loaded()),
    "easyocr_in_parent": "easyocr" in sys.modules,
    "host_bytes": result["host_bytes"],
    "replicas": len(plan.replicas),
}))
"""


def test_plan_and_profile_never_build_the_model_in_the_calling_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", PARENT_SCRIPT], capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "TEXTSIEVE_CACHE_DIR": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["child_pid"] != out["parent_pid"]
    assert out["loaded_in_parent"] == 0 and out["easyocr_in_parent"] is False
    # a CRAFT replica on the CPU needs several hundred MB (weights, torch, activations)
    assert 300 * 2**20 < out["host_bytes"] < 8 * GiB
    assert out["replicas"] == 2
    # the measurement is cached and now drives the planner's host cost
    declared = ModelCost("craft", 2 * GiB, 5 * GiB, "declared")
    import os

    os.environ["TEXTSIEVE_CACHE_DIR"] = str(tmp_path)
    try:
        cost = cost_for("craft", "cpu", 2, 320, 240, declared)
        smaller = cost_for("craft", "cpu", 1, 160, 120, declared)
        bigger = cost_for("craft", "cpu", 8, 1920, 1080, declared)
    finally:
        del os.environ["TEXTSIEVE_CACHE_DIR"]
    assert cost.host_bytes == out["host_bytes"] and cost.source.startswith("measured")
    assert smaller.host_bytes == out["host_bytes"]  # a larger measurement covers a smaller setting
    assert bigger == declared  # nothing measured covers 8 x 1080p


def _child_peak(queue) -> None:
    from textsieve.resources.profile import peak_rss_bytes

    queue.put(peak_rss_bytes())


def test_a_spawned_childs_peak_memory_is_its_own():
    """ru_maxrss survives fork+exec on Linux: a child of a large parent would
    report the parent's peak. The profile's measurement must not."""
    import multiprocessing as mp

    import numpy as np

    ballast = np.ones(600 * 2**20, dtype=np.uint8)  # 600 MiB, touched
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_peak, args=(queue,))
    proc.start()
    peak = queue.get(timeout=120)
    proc.join(30)
    assert ballast.sum() == ballast.size
    assert peak < 400 * 2**20, peak
