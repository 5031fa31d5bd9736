"""The Ray executor on a real local Ray cluster started by the test, with
declared (simulated) GPUs and the detector on the CPU."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from textsieve.recipe import build_config
from textsieve.resources.inventory import GiB, parse_simulated
from textsieve.resources.planner import ModelCost, PlanLimits, plan
from textsieve.runtime.preflight import resolve_calibration
from textsieve.data.journal import index_ranges
from textsieve.runtime.ray_exec import (NodePlan, RayExecutor, _in_ranges, cpu_actor_cpus, pool_bounds,
                                        pools_from_plans)
from textsieve.runtime.lifecycle import RunSetup
from textsieve.runtime.serial import SerialExecutor
from textsieve.synthetic import TextBlock, VideoSpec, write_video

ray = pytest.importorskip("ray")


def run_serial(config) -> dict:
    """The reference outputs, from the serial executor."""
    return SerialExecutor(RunSetup.resolve(config)).run()

OUTPUTS = ("kept.jsonl", "dropped.jsonl", "errors.jsonl", "stats.jsonl")
COST = ModelCost("craft", int(2.5 * GiB), int(1.5 * GiB), "test")


def node(node_id: str, spec: str, **limits) -> NodePlan:
    inv = parse_simulated(spec, cpu=32, ram=256 * GiB)
    return NodePlan(node_id, node_id, inv, plan(inv, COST, PlanLimits(**limits)))


def test_pools_group_nodes_by_replicas_per_gpu():
    pools = pools_from_plans([
        node("a", "80GiB:79GiB," * 8),  # 2 per GPU (max_replicas_per_gpu)
        node("b", "24GiB:23GiB," * 4, max_replicas_per_gpu=4),  # 23 - 1.2 = 21.8 GiB -> 8 fit, capped at 4
        node("c", "16GiB:15GiB," * 2),  # 15 - 1 = 14 GiB -> 5 fit, capped at 2
        node("d", ""),  # CPU only: 32 cores / 4 -> 8 CPU replicas
    ])
    by_k = {p.k: p for p in pools}
    assert by_k[2].nodes == ["a", "c"] and by_k[2].size == 16 + 4 and by_k[2].num_gpus == 0.5
    # every actor of a pool gets the smallest per-replica share among its GPUs (c's 14 GiB / 2)
    assert by_k[2].memory_bytes == node("c", "16GiB:15GiB," * 2).plan.gpus[0].budget // 2
    assert by_k[0].memory_bytes is None
    assert by_k[4].nodes == ["b"] and by_k[4].size == 16 and by_k[4].num_gpus == 0.25
    assert by_k[0].nodes == ["d"] and by_k[0].size == 8 and by_k[0].num_gpus == 0.0


def test_a_half_full_gpu_lowers_its_nodes_k():
    pools = pools_from_plans([node("a", "80GiB:79GiB,80GiB:79GiB,80GiB:7GiB", max_replicas_per_gpu=4)])
    # 7 - 4 = 3 GiB fits one replica: Ray packs by count, so the node runs 1 per GPU
    assert [(p.k, p.size) for p in pools] == [(1, 3)]


@pytest.mark.parametrize("cores,actors,threads,expected", [
    (2, 1, 2, 0.0),  # this machine: a decode task and the repartition take both CPUs
    (1, 1, 1, 0.0),
    (32, 8, 4, 3.75),
    (16, 1, 4, 4.0),
])
def test_cpu_actors_leave_room_for_a_decode_task_and_the_repartition(cores, actors, threads, expected):
    cpus = cpu_actor_cpus(cores, actors, threads)
    assert cpus == expected
    assert actors * cpus + 2 <= max(cores, 2)  # the two 1-CPU tasks always fit beside them


def test_pools_are_dealt_rows_in_proportion_and_each_row_once():
    bounds = pool_bounds([3, 1])
    shares = [[i for i in range(100) if lo <= i % 4 < hi] for lo, hi in bounds]
    assert sorted(shares[0] + shares[1]) == list(range(100))
    assert len(shares[0]) == 75 and len(shares[1]) == 25


def test_done_sets_ship_as_ranges():
    ranges = index_ranges({0, 1, 2, 5, 7, 8})
    assert ranges == [(0, 3), (5, 6), (7, 9)]
    assert [i for i in range(10) if _in_ranges(ranges, i)] == [0, 1, 2, 5, 7, 8]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("raydata")
    rows = []
    for i, text in enumerate(["Hello", "", "Some caption", "Big words here", "", "Text"]):
        blocks = (TextBlock(text, 10, 60, size=24),) if text else ()
        write_video(d / f"v{i}.mp4", VideoSpec(width=200, height=150, frames=10, gop=5, fps=Fraction(10), blocks=blocks))
        rows.append({"id": i, "videos": [f"v{i}.mp4"]})
    rows += [{"id": "missing", "videos": ["nope.mp4"]}, {"id": "empty", "videos": []},
             {"id": "pair", "videos": ["v0.mp4", "v2.mp4"]}]
    path = d / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def cluster(ray_local):
    """The session's local Ray instance (conftest.py): its declared GPUs do not exist, so the
    replicas of a plan from the node's real inventory run on the CPU."""
    return ray_local


# the detector where it is not what a test is about: a PP-OCR replica starts in under a second,
# CRAFT's in about 3 s of CPU in each actor (importing torch and EasyOCR)
FAST = {"filter.detector": "ppocr"}


def cfg(dataset: Path, export: Path, gpus: int = 1, **extra):
    """A Ray run on ``gpus`` declared GPUs, one actor each (each actor costs
    seconds of start-up on 2 cores: one unless placement is the point)."""
    return build_config(overrides={"dataset_path": str(dataset), "export_path": str(export),
                                   "filter.max_area_ratio": 0.05, "simulate_gpus": ",".join(["16GiB:16GiB"] * gpus),
                                   "max_replicas_per_gpu": 1, "executor": "ray", **extra}).config


def read(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text() for name in OUTPUTS}


def test_ray_outputs_equal_the_local_executors_and_follow_the_plan(cluster, dataset, tmp_path, monkeypatch):
    # PP-OCR: placement is the point here; CRAFT's equal outputs on Ray are test_conformance's.
    # Ray Data starts a pool's actors without waiting for them, so one actor could judge these 9
    # samples before the other's constructor logged where it landed: here the pool waits for both.
    from ray.data import DataContext

    monkeypatch.setattr(DataContext.get_current(), "wait_for_min_actors_s", 300)
    run_serial(build_config(overrides={"dataset_path": str(dataset), "export_path": str(tmp_path / "serial"),
                                       "filter.max_area_ratio": 0.05, **FAST}).config)
    summary = RayExecutor(RunSetup.resolve(cfg(dataset, tmp_path / "ray", gpus=2, **FAST))).run()
    assert read(tmp_path / "ray") == read(tmp_path / "serial")
    assert summary.counts.adds_up and summary.counts.input == 9
    detail = summary.to_json()["executor_detail"]
    # one pool: k=1 replica per declared GPU, inventory taken on the node itself
    assert [(p["k"], p["size"], p["num_gpus"]) for p in detail["pools"]] == [(1, 2, 1.0)]
    assert detail["nodes"][0]["plan"]["device_kind"] == "gpu"
    # one actor per declared GPU, each bound by Ray to its own GPU
    assert sorted(detail["actors_per_gpu"]) == ["0", "1"] and set(detail["actors_per_gpu"].values()) == {1}
    assert all(a["cuda_visible_devices"] == a["gpu_ids"][0] for a in detail["actors"])


def test_ray_ships_the_calibration_to_its_actors(cluster, dataset, tmp_path):
    """ppocr with a calibration whose file is gone by the time actors start:
    the driver ships the map, so nodes need no copy of the file."""
    from textsieve.calibration import Calibration, save_calibration

    path = save_calibration(Calibration("ppocr", None, (0.0, 0.1, 1.0), (0.0, 0.2, 0.5)), tmp_path / "cal.json")
    extra = {"filter.detector": "ppocr", "filter.calibration": str(path)}
    serial = build_config(overrides={"dataset_path": str(dataset), "export_path": str(tmp_path / "serial"),
                                     "filter.max_area_ratio": 0.05, **extra}).config
    SerialExecutor(RunSetup.resolve(serial, calibration=resolve_calibration(serial.filter))).run()
    config = cfg(dataset, tmp_path / "ray", **extra)
    calibration = resolve_calibration(config.filter)  # the driver reads it once
    path.unlink()
    summary = RayExecutor(RunSetup.resolve(config, calibration=calibration)).run()
    assert read(tmp_path / "ray") == read(tmp_path / "serial")
    assert summary.ratios.scale.startswith("craft, mapped from ppocr")
    mapped = [v for line in read(tmp_path / "ray")["stats.jsonl"].splitlines() for v in json.loads(line)["videos"]]
    assert any(v["raw_frame_ratios"] != v["frame_ratios"] for v in mapped)


def test_ray_judges_real_videos_among_20000_rows_without_videos(cluster, dataset, tmp_path):
    """The real videos come with 20,000 rows without videos: both once waited
    for ever on 2 cores. (The command a user runs on a CPU machine, which
    starts a Ray instance of its own and plans CPU actors that leave room for
    decoding, is test_conformance's killed-then-resumed run.)"""
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    for row in rows:
        row["videos"] = [str(dataset.parent / v) for v in row["videos"]]
    rows += [{"id": f"caption{i}", "text": f"a caption without a video, number {i}"} for i in range(20_000)]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_serial(build_config(overrides={"dataset_path": str(mixed), "export_path": str(tmp_path / "serial"),
                                       "filter.max_area_ratio": 0.05, **FAST}).config)
    # no declared GPU: CPU actors, which must leave a core to the decode tasks
    config = build_config(overrides={"dataset_path": str(mixed), "export_path": str(tmp_path / "ray"),
                                     "filter.max_area_ratio": 0.05, "executor": "ray", **FAST}).config
    summary = RayExecutor(RunSetup.resolve(config)).run()
    assert summary.to_json()["executor_detail"]["pools"][0]["num_gpus"] == 0
    assert summary.counts.input == 20_009 and summary.counts.adds_up
    assert read(tmp_path / "ray") == read(tmp_path / "serial")


def shard_size_helpers():
    """SHARD and check_band from tests/data/test_shard_size.py (importable by
    name only once pytest collected that folder)."""
    import importlib.util
    import sys

    module = sys.modules.get("test_shard_size")
    if module is None:
        path = Path(__file__).parents[1] / "data" / "test_shard_size.py"
        spec = importlib.util.spec_from_file_location("test_shard_size", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.SHARD, module.check_band


def test_ray_shards_are_the_size_asked_for(cluster, tmp_path):
    """Ray's workers write a shard per batch; the run ends with Data-Juicer's
    shard count, every shard but each output's last in the band (tests/data/test_shard_size.py)."""
    SHARD, check_band = shard_size_helpers()

    rows = [{"id": i, "text": "caption " * (i % 40), "videos": [f"gone{i}.mp4"] if i % 100 == 0 else []}
            for i in range(4000)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = RayExecutor(RunSetup.resolve(cfg(data, tmp_path / "out", export_shard_size=SHARD, export_type="parquet"))).run()
    assert summary.to_json()["counts"] == {"input": 4000, "kept": 3960, "dropped": 0, "error": 40, "adds_up": True}
    sizes = check_band(tmp_path / "out", "parquet")
    assert len(sizes["kept"]) > 3
    import pyarrow.dataset as pads

    kept = pads.dataset(tmp_path / "out" / "kept", format="parquet").to_table().column("id").to_pylist()
    assert sorted(kept) == [i for i in range(4000) if i % 100]
