"""Measured per-replica cost of a model, cached per (model, device kind,
batch, frame size), so the planner plans from numbers rather than guesses.

The measurement runs in a fresh child process: it loads the model on the
device, runs the planned batch at the planned frame size twice, and records
the peak. On a GPU: NVML's figure for the child process (CUDA context +
allocator, whatever the framework) and, for torch models, torch's peak
reserved memory, whichever is larger; on the CPU: the child's peak RSS.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..data.atomic import write_atomic
from .planner import ModelCost


def cache_file() -> Path:
    root = os.environ.get("TEXTSIEVE_CACHE_DIR") or Path.home() / ".cache" / "textsieve"
    return Path(root) / "profiles.json"


def profile_id(model: str, device_name: str, batch: int, width: int, height: int) -> str:
    return f"{model}|{device_name}|b{batch}|{width}x{height}"


def _child(queue, name: str, params: dict, device: str, batch: int, width: int, height: int) -> None:
    import psutil

    from ..detect import registry
    from ..synthetic import TextBlock, VideoSpec, render_frame

    result: dict[str, Any] = {"pid": os.getpid()}
    try:
        cuda = device.startswith("cuda")
        key = registry.prepare(name, **params)
        model = registry.get(key, device)
        # torch only if the model is a torch model (CRAFT); ONNX Runtime's
        # memory shows in NVML's per-process figure alone
        torch = sys.modules.get("torch") if cuda and key.detector.uses_torch else None
        if torch is not None:
            torch.cuda.reset_peak_memory_stats(device)
        spec = VideoSpec(width=width, height=height, blocks=(TextBlock("Profile text 123", 10, height // 2, size=max(12, height // 12)),))
        frames = [render_frame(spec, i) for i in range(batch)]
        t0 = time.perf_counter()
        for _ in range(2):
            model(frames)
        result["seconds_per_batch"] = (time.perf_counter() - t0) / 2
        result["host_bytes"] = peak_rss_bytes()
        result["rss_bytes"] = psutil.Process().memory_info().rss
        if cuda:
            from .inventory import machine_inventory

            index = int(device.split(":", 1)[1]) if ":" in device else 0
            result["device_name"] = next(g.name for g in machine_inventory().gpus if g.index == index)
            result["torch_peak_reserved"] = int(torch.cuda.max_memory_reserved(index)) if torch is not None else 0
            result["gpu_bytes"] = max(result["torch_peak_reserved"], _nvml_process_bytes(os.getpid()) or 0)
        else:
            result["device_name"] = "cpu"
            result["gpu_bytes"] = 0
    except Exception as exc:  # reported to the parent, which raises it
        result["error"] = f"{type(exc).__name__}: {exc}"
    queue.put(result)


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it was exec'd. Not
    ``ru_maxrss``: Linux keeps that across fork and exec, so a spawned child
    of a large parent would report the parent's peak as its own."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _nvml_process_bytes(pid: int) -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid == pid and proc.usedGpuMemory:
                        return int(proc.usedGpuMemory)
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None
    return None


def measure(name: str, params: dict, device: str, batch: int, width: int, height: int, timeout_s: float = 900) -> dict:
    """Measure in a child process and store the result in the cache."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, name, params, device, batch, width, height), daemon=True)
    proc.start()
    try:
        result = queue.get(timeout=timeout_s)
    except Exception as exc:
        proc.kill()
        raise ConfigError(f"profiling {name} on {device} gave no result within {timeout_s:.0f} s") from exc
    proc.join(30)
    if "error" in result:
        raise ConfigError(f"profiling {name} on {device} failed: {result['error']}")
    result.update(
        model=name, device=device, batch=batch, width=width, height=height,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    path = cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    cache = _read(path)
    cache[profile_id(name, result["device_name"], batch, width, height)] = result
    write_atomic(path, json.dumps(cache, indent=2), path.with_name(path.name + ".tmp"))
    return result


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def cost_for(name: str, device_name: str, batch: int, width: int, height: int, declared: ModelCost) -> ModelCost:
    """The measured cost for this exact setting if cached, else the largest
    measurement of this model on this device kind that covers the setting,
    else ``declared``."""
    cache = _read(cache_file())
    exact = cache.get(profile_id(name, device_name, batch, width, height))
    candidates = [exact] if exact else [
        r for r in cache.values()
        if r.get("model") == name and r.get("device_name") == device_name
        and r["batch"] >= batch and r["width"] * r["height"] >= width * height
    ]
    if not candidates:
        return declared
    r = max(candidates, key=lambda r: (r["gpu_bytes"], r["host_bytes"]))
    return ModelCost(
        name,
        gpu_bytes=int(r["gpu_bytes"]) or declared.gpu_bytes,
        host_bytes=int(r["host_bytes"]),
        source=f"measured {r['measured_at']} on {r['device_name']}, batch {r['batch']} at {r['width']}x{r['height']}",
    )


def plan_cost(name: str, gpu_names: list[str], batch: int, width: int, height: int, declared: ModelCost) -> ModelCost:
    """One cost for a plan: the largest GPU cost among the GPU kinds present
    (unequal GPUs get the conservative figure) and the measured CPU host cost."""
    gpu = [cost_for(name, n, batch, width, height, declared) for n in sorted(set(gpu_names))]
    cpu = cost_for(name, "cpu", batch, width, height, declared)
    worst = max(gpu, key=lambda c: c.gpu_bytes) if gpu else declared
    sources = {f"GPU: {worst.source}"} if gpu else set()
    sources.add(f"host: {cpu.source}")
    return ModelCost(name, worst.gpu_bytes, cpu.host_bytes, "; ".join(sorted(sources)))
