"""A real multi-node Ray cluster (ray.cluster_utils.Cluster): three nodes of
different inventories, each reporting its own (simulated GPUs through the
node's environment, as `TEXTSIEVE_SIMULATE_GPUS=... ray start` would):

- node A: 1 GPU of 80 GiB: 2 replicas (k = 2; one GPU, not two: each actor costs seconds
  of start-up on 2 cores, and the placement of k = 1 over two GPUs is test_ray's);
- node B: 1 GPU of 24 GiB with 3 GiB free: 1 replica (k = 1);
- node C: no GPU: a CPU replica.

The fast detector keeps it quick; the detector actors' replicas run on the
CPU (declared GPUs have no device behind them)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from runs import OUTPUTS, RECIPE, outputs
from textsieve.cli import main
from textsieve.data.shards import read_manifest, read_shard

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

NODES = {"A": ("80GiB:80GiB", 1), "B": ("24GiB:3GiB", 1), "C": ("", 0)}


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():  # the session's local instance (conftest.py), if a test before this one started it
        ray.shutdown()
    cluster = cluster_utils.Cluster()
    cluster.add_node(num_cpus=1)  # the head: the driver's node, no detector
    ids = {}
    for name, (gpus, count) in NODES.items():
        node = cluster.add_node(num_cpus=2, num_gpus=count, env_vars={"TEXTSIEVE_SIMULATE_GPUS": gpus})
        ids[name] = node.node_id
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, ids
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, small_dataset) -> Path:
    """The small dataset's rows twice over (18 samples), so every actor gets work."""
    path = tmp_path_factory.mktemp("cluster") / "data.jsonl"
    base = small_dataset.parent
    rows = []
    for line in small_dataset.read_text().splitlines() * 2:
        row = json.loads(line)
        row["videos"] = [str(base / v) for v in row["videos"]]
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    return path


def common(dataset: Path, export: Path, *extra: str) -> list[str]:
    return ["run", "--dataset", str(dataset), "--export", str(export), "--detector", "ppocr", "--max-area-ratio",
            "0.05", *extra]


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("cluster-ref") / "out"
    assert main(common(dataset, out, "--executor", "local")) == 0
    return outputs(out)


def test_plan_prints_every_nodes_plan(cluster, capsys):
    c, ids = cluster
    assert main(["plan", "--executor", "ray", "--address", c.address, "--detector", "ppocr"]) == 0
    printed = capsys.readouterr()
    out = printed.out + printed.err
    assert all(f"({node_id[:12]})" in out for node_id in ids.values())
    assert "Ray pool: 2 detector actor(s), 0.5 GPU" in out


def test_an_actor_killed_mid_run_loses_nothing(cluster, dataset, reference, tmp_path):
    c, _ = cluster
    proc = subprocess.Popen([sys.executable, "-m", "textsieve.cli", *common(dataset, tmp_path / "out", "--executor", "ray",
                                                                          "--address", c.address)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 240
    while proc.poll() is None and killed is None and time.monotonic() < deadline:
        # the cluster's processes are this test process's children: never another run's actor
        for p in psutil.Process().children(recursive=True):
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            if "MapBatches(DetectStage)" in cmd and "__init__" not in cmd and (tmp_path / "out" / "journal.jsonl").exists():
                p.kill()
                killed = p.pid
                break
        time.sleep(0.5)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    assert killed is not None
    assert outputs(tmp_path / "out") == reference


def test_the_driver_killed_and_run_again_resumes_sharded_outputs_exactly_once(cluster, dataset, reference, tmp_path):
    c, _ = cluster
    command = [sys.executable, "-m", "textsieve.cli", *common(dataset, tmp_path / "out", "--executor", "ray",
                                                              "--address", c.address, "--export-shard-size", "1500")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "out" / "manifest.jsonl"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= 2:  # a shard committed
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    again = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    # byte for byte, once sorted by index: each sample's lines equal the single-file reference's
    _, entries, complete = read_manifest(tmp_path / "out")
    assert complete
    for file in OUTPUTS:
        name = file.removesuffix(".jsonl")
        indexed = []
        for entry in entries:
            if name in entry.files:
                records = read_shard(tmp_path / "out" / entry.files[name])
                indexed += zip(entry.indices_of(name), records)
        assert len({i for i, _ in indexed}) == len(indexed)  # no sample twice
        got = [json.dumps(r, ensure_ascii=False) for _, r in sorted(indexed, key=lambda t: t[0])]
        expected = [json.dumps(json.loads(line), ensure_ascii=False) for line in reference[file].splitlines()]
        assert got == expected, name
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["adds_up"] and summary["counts"]["input"] == 18


def test_a_data_juicer_ray_recipe_runs_where_every_nodes_plan_says(cluster, dataset, reference, tmp_path, capsys):
    """As a Data-Juicer user runs it: executor_type ray, ray_address, filters
    around the OCR op, export_path out/result.parquet, export_shard_size.
    Each node plans itself and the actors land where the plans say. Kept
    samples land where Data-Juicer's Ray exporter puts them: a folder of
    Parquet files at export_path; the other ops go to rest.yaml. (The other
    outputs of a sharded cluster run: the killed-driver test.)"""
    import pyarrow.parquet as pq
    import yaml

    c, ids = cluster
    recipe = tmp_path / "recipe.yaml"
    ray_globals = f"executor_type: ray\nray_address: {c.address}\nexport_shard_size: 400\ntext_key: text"
    recipe.write_text(RECIPE.format(dataset=dataset, export=tmp_path / "out" / "result.parquet", globals=ray_globals)
                      .replace("      frame_sample_num: 3", "      frame_sample_num: 3\n      detector: ppocr")
                      .replace("np: 2\n", ""))  # np caps a node's replicas: here each node's plan decides
    assert main(["run", str(recipe), "--max-replicas-per-gpu", "2"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "rest.yaml" in out and summary["executor"] == "ray" and summary["counts"]["adds_up"]
    detail = summary["executor_detail"]
    pools = {p["k"]: p for p in detail["pools"]}
    assert sorted(pools) == [0, 1, 2]
    assert pools[2]["nodes"] == [ids["A"]] and pools[2]["size"] == 2 and pools[2]["num_gpus"] == 0.5
    assert pools[1]["nodes"] == [ids["B"]] and pools[1]["size"] == 1
    assert ids["C"] in pools[0]["nodes"] and pools[0]["actor_cpus"] == 0.0  # 2 cores: both for decode + repartition
    plans = {n["node"]: n["plan"] for n in detail["nodes"]}
    assert [g["replicas"] for g in plans[ids["A"]]["gpus"]] == [2]
    assert [g["replicas"] for g in plans[ids["B"]]["gpus"]] == [1]
    # actors: each on one GPU, never more on a GPU than its node's plan says (two on A's,
    # one on B's), none with a GPU on C. Fewer may be logged: on a loaded machine Ray Data can
    # finish these 18 samples and stop a pool's last actor before its constructor logged it.
    where = Counter((a["node"], tuple(a["gpu_ids"])) for a in detail["actors"])
    assert where[(ids["A"], ("0",))] <= 2
    assert where[(ids["B"], ("0",))] <= 1
    assert all(len(a["gpu_ids"]) == 1 for a in detail["actors"] if a["node"] in (ids["A"], ids["B"]))
    assert sum(n for (node, _), n in where.items() if node == ids["A"]) >= 1
    assert all(not a["gpu_ids"] for a in detail["actors"] if a["node"] == ids["C"])
    folder = tmp_path / "out" / "result.parquet"
    shards = sorted(folder.glob("*.parquet"))
    assert folder.is_dir() and len(shards) >= 2  # 400-byte shards: several
    kept = pq.read_table(folder).to_pylist()  # one dataset, as Ray Data, pyarrow and Data-Juicer read a folder
    expected = [json.loads(line) for line in reference["kept.jsonl"].splitlines()]
    assert sorted(kept, key=json.dumps) == sorted(expected, key=json.dumps)
    assert all("__dj__stats__" in row for row in kept)
    rest = yaml.safe_load((tmp_path / "out" / "rest.yaml").read_text())
    assert [next(iter(op)) for op in rest["process"]] == ["video_duration_filter", "video_resolution_filter"]
    assert rest["dataset_path"] == str(folder.resolve()) and rest["executor_type"] == "ray"
    assert rest["export_path"].endswith("result-rest.parquet") and rest["text_key"] == "text"
    # only Data-Juicer's keys: dj-process refuses keys it does not know
    assert set(rest) <= {"project_name", "dataset_path", "export_path", "executor_type", "ray_address",
                         "export_shard_size", "np", "text_key", "process"}
