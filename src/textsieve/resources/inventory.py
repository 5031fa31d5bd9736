"""What this machine has: GPUs (NVML), usable CPU cores, available RAM.

Every query is injectable: the NVML module, the environment, the cgroup
root. ``parse_simulated`` builds the same :class:`Inventory` from a string
so that ``plan`` and ``run`` behave on simulated GPUs exactly as on real ones.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import psutil

from ..errors import ConfigError

GiB = 1 << 30


@dataclass(frozen=True)
class GpuInfo:
    index: int  # CUDA ordinal in this process (after CUDA_VISIBLE_DEVICES)
    uuid: str
    name: str
    total: int  # bytes
    free: int  # bytes
    nvml_index: int | None = None  # NVML (PCI-order) index; None when not from NVML


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[GpuInfo, ...]
    cpu_cores: float
    ram_available: int
    source: str  # nvml | torch | simulated | none
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return asdict(self)


def parse_size(text: str) -> int:
    """'80GiB', '3.5 GB', '512MiB', '1024' (bytes) -> bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]i?B?|B)?\s*", text, flags=re.I)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 80GiB, 24GB, 512MiB)")
    number, unit = float(m.group(1)), (m.group(2) or "B").upper()
    powers = {"K": 1, "M": 2, "G": 3, "T": 4}
    if unit == "B":
        return int(number)
    base = 1024 if "I" in unit else 1000
    return int(number * base ** powers[unit[0]])


def visible_nvml_indices(env_value: str | None, devices: list[tuple[int, str]]) -> list[int]:
    """Which NVML devices CUDA shows this process, in CUDA order.

    NVML numbers devices in PCI order and ignores ``CUDA_VISIBLE_DEVICES``;
    CUDA applies it. Entries are indices or UUIDs (``GPU-...``, a unique
    prefix is enough); as in CUDA, the list stops at the first invalid entry.
    """
    if env_value is None:
        return [i for i, _ in devices]
    chosen: list[int] = []
    for raw in env_value.split(","):
        entry = raw.strip()
        if not entry:
            break
        if entry.isdigit():
            idx = int(entry)
            if idx >= len(devices) or idx in chosen:
                break
            chosen.append(devices[idx][0])
            continue
        matches = [i for i, uuid in devices if uuid.startswith(entry) or uuid == f"GPU-{entry}"]
        if len(matches) != 1 or matches[0] in chosen:
            break
        chosen.append(matches[0])
    return chosen


def query_nvml(nvml: Any | None = None) -> list[dict]:
    """Every NVML device (PCI order): index, uuid, name, total, free. Raises
    if NVML is absent (no driver); NVML creates no CUDA context."""
    if nvml is None:
        import pynvml as nvml
    nvml.nvmlInit()
    try:
        out = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            uuid, name = nvml.nvmlDeviceGetUUID(handle), nvml.nvmlDeviceGetName(handle)
            out.append(
                {
                    "index": i,
                    "uuid": uuid.decode() if isinstance(uuid, bytes) else uuid,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "total": int(mem.total),
                    "free": int(mem.free),
                }
            )
        return out
    finally:
        nvml.nvmlShutdown()


def gpu_inventory(env: Mapping[str, str] | None = None, nvml: Any | None = None, use_torch: bool = True) -> tuple[tuple[GpuInfo, ...], str, list[str]]:
    """Visible GPUs with their free memory, the source used, and notes."""
    env = os.environ if env is None else env
    notes: list[str] = []
    try:
        devices = query_nvml(nvml)
    except Exception as exc:  # no driver, no library: not an error on a CPU machine
        notes.append(f"NVML unavailable ({type(exc).__name__}: {exc})")
        devices = None
    if devices is not None:
        visible = visible_nvml_indices(env.get("CUDA_VISIBLE_DEVICES"), [(d["index"], d["uuid"]) for d in devices])
        by_index = {d["index"]: d for d in devices}
        gpus = tuple(
            GpuInfo(cuda, by_index[n]["uuid"], by_index[n]["name"], by_index[n]["total"], by_index[n]["free"], n)
            for cuda, n in enumerate(visible)
        )
        if len(visible) < len(devices):
            notes.append(f"CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')!r} hides {len(devices) - len(visible)} of {len(devices)} GPUs")
        return gpus, "nvml", notes
    if use_torch:
        if not cuda_driver_present():
            notes.append("no CUDA driver (libcuda.so.1 does not load)")
            return (), "none", notes
        gpus = _torch_gpus(notes)
        if gpus:
            return gpus, "torch", notes
    return (), "none", notes


def cuda_driver_present() -> bool:
    """Whether the CUDA driver library loads. torch's CUDA loads this same library by this same
    name, so where it does not load torch sees no GPU either, and asking torch would only cost
    its import (about 1.5 s of CPU, in every command and every Ray node's inventory task on a
    machine without GPUs). Loading it creates no CUDA context."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _torch_gpus(notes: list[str]) -> tuple[GpuInfo, ...]:
    # Fallback only: mem_get_info creates a CUDA context (~300-500 MB) per device.
    try:
        import torch

        if not torch.cuda.is_available():
            return ()
        out = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            props = torch.cuda.get_device_properties(i)
            out.append(GpuInfo(i, str(getattr(props, "uuid", f"cuda:{i}")), props.name, int(total), int(free)))
        notes.append("free memory from torch.cuda.mem_get_info (this process now holds a CUDA context)")
        return tuple(out)
    except Exception as exc:
        notes.append(f"torch CUDA query failed: {exc}")
        return ()


def cpu_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> float:
    """Cores this process may use: its CPU affinity, capped by a cgroup quota."""
    cores = float(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else float(os.cpu_count() or 1)
    quota = _cgroup_cpu_quota(cgroup_root)
    return min(cores, quota) if quota else cores


def _cgroup_cpu_quota(root: Path) -> float | None:
    try:
        v2 = root / "cpu.max"
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        q, p = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if q.exists() and p.exists():
            quota = int(q.read_text())
            return None if quota <= 0 else quota / int(p.read_text())
    except (OSError, ValueError):
        return None
    return None


def ram_available(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Bytes this process can still use: psutil's available, capped by the cgroup limit."""
    available = psutil.virtual_memory().available
    try:
        limit_file, usage_file = cgroup_root / "memory.max", cgroup_root / "memory.current"
        if not limit_file.exists():
            limit_file, usage_file = cgroup_root / "memory" / "memory.limit_in_bytes", cgroup_root / "memory" / "memory.usage_in_bytes"
        limit = limit_file.read_text().strip()
        if limit != "max" and int(limit) < (1 << 60):
            available = min(available, int(limit) - int(usage_file.read_text()))
    except (OSError, ValueError):
        pass
    return max(0, int(available))


def parse_simulated(spec: str, cpu: float | None = None, ram: int | None = None) -> Inventory:
    """``"80GiB:72GiB,24GiB:3GiB"`` (total:free per GPU), or a JSON file with
    ``{"gpus": [{"total": ..., "free": ..., "name": ...}], "cpu_cores": ..., "ram_available": ...}``
    (sizes as numbers of bytes or strings like ``"80GiB"``)."""
    if spec.strip().endswith(".json") or Path(spec).is_file():
        data = json.loads(Path(spec).read_text())
        entries = data.get("gpus", [])
        cpu = data.get("cpu_cores", cpu)
        ram = parse_size(str(data["ram_available"])) if "ram_available" in data else ram
    else:
        entries = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            total, _, free = part.partition(":")
            entries.append({"total": total, "free": free or total})
    gpus = []
    for i, e in enumerate(entries):
        total, free = parse_size(str(e["total"])), parse_size(str(e["free"]))
        if free > total:
            raise ValueError(f"simulated GPU {i}: free {e['free']} exceeds total {e['total']}")
        gpus.append(GpuInfo(i, e.get("uuid", f"GPU-sim-{i:04d}"), e.get("name", f"simulated-{total / GiB:g}GiB"), total, free))
    return Inventory(
        gpus=tuple(gpus),
        cpu_cores=float(cpu if cpu is not None else cpu_cores()),
        ram_available=int(ram if ram is not None else ram_available()),
        source="simulated",
    )


def machine_inventory(simulate: str | None = None, nvml: Any | None = None, env: Mapping[str, str] | None = None) -> Inventory:
    """The real inventory, or a simulated one when ``simulate`` is given."""
    if simulate:
        try:
            return parse_simulated(simulate)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"--simulate-gpus {simulate!r}: {exc} (use \"TOTAL:FREE,...\", e.g. "
                              f"\"80GiB:72GiB\", or a JSON file as docs/planner.md shows)") from None
    gpus, source, notes = gpu_inventory(env=env, nvml=nvml)
    return Inventory(gpus=gpus, cpu_cores=cpu_cores(), ram_available=ram_available(), source=source, notes=tuple(notes))
