"""The GPU kit: checks that need a real CUDA GPU, skipped cleanly without one.

    python -m pytest -m gpu

They exercise what no simulated device can: CRAFT on `cuda`, the
per-process memory cap, a real CUDA out-of-memory error and the backoff
that answers it, NVML monitoring of a real peak, two replicas sharing one
GPU, and ONNX Runtime's CUDA provider. bench/bench_gpu.py measures speed
and memory on the same machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from textsieve.cli import main
from textsieve.synthetic import TextBlock, VideoSpec, render_frame, write_video

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (these run where one is: pytest -m gpu)"),
]

SPEC = VideoSpec(width=640, height=360, blocks=(TextBlock("Subtitles on a GPU", 40, 280, size=28),
                                                 TextBlock("BREAKING NEWS", 20, 20, size=36)))


def boxes_close(a, b, tolerance: float = 2.0) -> bool:
    """Same boxes, each corner within ``tolerance`` pixels (GPU kernels round differently)."""
    if len(a.horizontal) != len(b.horizontal) or len(a.free) != len(b.free):
        return False
    flat = lambda d: np.array([v for box in d.horizontal for v in box] + [v for q in d.free for p in q for v in p])
    return bool(np.all(np.abs(flat(a) - flat(b)) <= tolerance))


def test_craft_on_cuda_gives_the_cpu_boxes():
    from textsieve.detect.craft import CraftDetector

    frames = [render_frame(SPEC, i) for i in range(3)]
    cpu = CraftDetector("cpu")(frames)
    gpu = CraftDetector("cuda:0")(frames)
    assert all(boxes_close(c, g) for c, g in zip(cpu, gpu)), (cpu, gpu)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_craft_in_half_precision_on_cuda_finds_the_fp32_text(precision):
    """precision fp16/bf16 on a GPU (torch autocast, tensor cores): the same
    text as fp32, boxes a few pixels apart at most, and none on a blank frame."""
    from textsieve.detect.area import frame_text_ratio
    from textsieve.detect.craft import CraftDetector

    frames = [render_frame(SPEC, i) for i in range(3)] + [render_frame(VideoSpec(width=640, height=360), 0)]
    fp32 = CraftDetector("cuda:0")(frames)
    half = CraftDetector("cuda:0", precision=precision)(frames)
    for a, b in zip(fp32, half):
        assert boxes_close(a, b, tolerance=4.0), (a, b)
        assert abs(frame_text_ratio(a, 640, 360) - frame_text_ratio(b, 640, 360)) <= 0.005
    assert half[-1].horizontal == [] and half[-1].free == []


def test_the_memory_cap_is_applied_and_read_back():
    from textsieve.detect.craft import bind_torch
    from textsieve.resources.planner import Replica

    total = torch.cuda.get_device_properties(0).total_memory
    bind_torch(Replica("cuda:0", None, 1, memory_bytes=total // 4))
    getter = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if getter is None:
        pytest.skip(f"torch {torch.__version__} cannot read the cap back")
    assert getter(0) == pytest.approx(0.25, abs=1e-3)
    bind_torch(Replica("cuda:0", 0.5, 1))
    assert getter(0) == pytest.approx(0.5)


def test_a_real_cuda_out_of_memory_backs_off_and_the_run_completes(tmp_path):
    """A cap so small that a batch of 8 720p frames cannot fit: the replica
    must halve down (freeing the cache) and finish, on the GPU or the CPU."""
    from textsieve.runtime.flow import DetectorReplica, FrameKey, ModelSpec, ReplicaSpec
    from textsieve.resources.planner import Replica

    total = torch.cuda.get_device_properties(0).total_memory
    cap = 1.2 * 2**30 / total  # weights and a frame or two, not eight 720p frames
    spec = ReplicaSpec((ModelSpec("craft"),), Replica("cuda:0", cap, 1), batch_size=8, cpu_fallback=True)
    replica = DetectorReplica(spec, spec.models[0])
    frames = [render_frame(replace(SPEC, width=1280, height=720), i) for i in range(8)]
    results = replica.detect([FrameKey(0, "v.mp4", i) for i in range(8)], frames)
    assert replica.counters.oom_backoffs >= 1  # a real torch.cuda.OutOfMemoryError happened
    assert replica.sizer.current < 8
    assert all(type(r).__name__ == "Detections" for r in results)


def test_nvml_monitoring_records_a_real_peak():
    from textsieve.runtime.monitor import ResourceMonitor, nvml_query

    monitor = ResourceMonitor(nvml_query, {0: 2**30}, interval_s=0.05).start()
    block = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda:0")  # 512 MiB
    torch.cuda.synchronize()
    time.sleep(0.3)
    del block
    torch.cuda.empty_cache()
    monitor.stop()
    report = monitor.report()["gpus"]["0"]
    assert report["peak_used_bytes"] >= 512 * 2**20


@pytest.fixture(scope="module")
def gpu_dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpu")
    rows = []
    for i in range(6):
        spec = replace(SPEC, frames=20, gop=10, fps=Fraction(10), blocks=SPEC.blocks[: i % 3])
        write_video(folder / f"g{i}.mp4", spec)
        rows.append({"id": i, "videos": [f"g{i}.mp4"]})
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_two_replicas_on_one_gpu_each_bind_their_device_and_match_the_cpu(gpu_dataset, tmp_path):
    cpu = tmp_path / "cpu"
    assert main(["run", "--dataset", str(gpu_dataset), "--export", str(cpu), "--device", "cpu", "--max-area-ratio", "0.05"]) == 0
    gpu = tmp_path / "gpu"
    assert main(["run", "--dataset", str(gpu_dataset), "--export", str(gpu), "--device", "cuda:0",
                 "--max-replicas-per-gpu", "2", "--max-area-ratio", "0.05"]) == 0
    summary = json.loads((gpu / "summary.json").read_text())
    replicas = summary["detector"]["replicas"]
    assert [r["device"] for r in replicas] == ["cuda:0", "cuda:0"]
    assert all(r["memory_fraction"] and r["memory_fraction"] < 0.5 for r in replicas)
    assert summary["resources"]["gpus"]["0"]["peak_used_bytes"] > 0
    # the same decisions as on the CPU (ratios may differ in the last digits)
    status = lambda folder: [json.loads(l)["status"] for l in (folder / "stats.jsonl").read_text().splitlines()]
    assert status(gpu) == status(cpu)


def test_ppocr_runs_on_the_cuda_provider():
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (pip install onnxruntime-gpu)")
    from textsieve.detect.ppocr import PpOcrDetector

    frames = [render_frame(SPEC, i) for i in range(4)]
    gpu = PpOcrDetector("cuda:0", memory_bytes=2 * 2**30)
    assert gpu._session.get_providers()[0] == "CUDAExecutionProvider"
    cpu = PpOcrDetector("cpu")(frames)
    assert all(boxes_close(c, g, tolerance=3.0) for c, g in zip(cpu, gpu(frames)))
