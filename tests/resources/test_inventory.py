"""Device inventory against a simulated NVML, cgroup files and simulated specs."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from textsieve.resources.inventory import (
    GiB,
    _cgroup_cpu_quota,
    gpu_inventory,
    parse_simulated,
    parse_size,
    ram_available,
    visible_nvml_indices,
)


class FakeNvml:
    """NVML's Python API for a machine whose GPUs are listed in PCI order."""

    def __init__(self, devices):
        self.devices = devices  # (uuid, name, total, free)
        self.initialised = 0

    def nvmlInit(self):
        self.initialised += 1

    def nvmlShutdown(self):
        self.initialised -= 1

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUUID(self, h):
        return self.devices[h][0]

    def nvmlDeviceGetName(self, h):
        return self.devices[h][1].encode()  # older bindings return bytes

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=self.devices[h][2], free=self.devices[h][3])


NVML = FakeNvml(
    [
        ("GPU-aaaa-0000", "A100-80GB", 80 * GiB, 70 * GiB),
        ("GPU-bbbb-1111", "A100-40GB", 40 * GiB, 10 * GiB),
        ("GPU-cccc-2222", "L4", 24 * GiB, 24 * GiB),
        ("GPU-dddd-3333", "L4", 24 * GiB, 1 * GiB),
    ]
)


@pytest.mark.parametrize(
    "env,expected_nvml,expected_names",
    [
        (None, [0, 1, 2, 3], ["A100-80GB", "A100-40GB", "L4", "L4"]),
        ("2,0", [2, 0], ["L4", "A100-80GB"]),
        ("GPU-dddd-3333,GPU-bbbb", [3, 1], ["L4", "A100-40GB"]),
        ("1,7,2", [1], ["A100-40GB"]),  # CUDA stops at the first invalid entry
        ("", [], []),
        ("-1", [], []),
        ("3,3", [3], ["L4"]),
    ],
)
def test_cuda_visible_devices_maps_nvml_devices(env, expected_nvml, expected_names):
    gpus, source, notes = gpu_inventory(env={} if env is None else {"CUDA_VISIBLE_DEVICES": env}, nvml=NVML)
    assert source == "nvml"
    assert [g.nvml_index for g in gpus] == expected_nvml
    assert [g.index for g in gpus] == list(range(len(expected_nvml)))  # CUDA ordinals
    assert [g.name for g in gpus] == expected_names
    if expected_nvml:
        assert gpus[0].free == NVML.devices[expected_nvml[0]][3]
    assert NVML.initialised == 0  # always shut down


def test_no_nvml_falls_back_without_failing():
    class Broken:
        def nvmlInit(self):
            raise OSError("NVML Shared Library Not Found")

    gpus, source, notes = gpu_inventory(env={}, nvml=Broken(), use_torch=False)
    assert gpus == () and source == "none" and "NVML unavailable" in notes[0]


def test_without_a_cuda_driver_the_inventory_does_not_import_torch():
    # torch would see no GPU there, and its import costs every command and every Ray node's
    # inventory task about 1.5 s of CPU
    code = ("import sys; from textsieve.resources.inventory import cuda_driver_present, machine_inventory; "
            "inventory = machine_inventory(); print(cuda_driver_present(), 'torch' in sys.modules, inventory.source)")
    driver, torch_imported, source = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                    check=True).stdout.split()
    if driver == "True":
        pytest.skip("a CUDA driver loads here: the torch fallback is the GPU kit's to check")
    assert torch_imported == "False" and source in ("none", "nvml")


def test_visible_indices_pure():
    devices = [(0, "GPU-x"), (1, "GPU-y")]
    assert visible_nvml_indices("1", devices) == [1]
    assert visible_nvml_indices("GPU-y,0", devices) == [1, 0]
    assert visible_nvml_indices("GPU-", devices) == []  # ambiguous prefix


def test_parse_size():
    assert parse_size("80GiB") == 80 * GiB
    assert parse_size("1.5 GiB") == int(1.5 * GiB)
    assert parse_size("24GB") == 24 * 10**9
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("100") == 100
    with pytest.raises(ValueError):
        parse_size("lots")


def test_simulated_string_and_json(tmp_path):
    inv = parse_simulated("80GiB:72GiB,24GiB:3GiB", cpu=8, ram=64 * GiB)
    assert [(g.total, g.free) for g in inv.gpus] == [(80 * GiB, 72 * GiB), (24 * GiB, 3 * GiB)]
    assert inv.source == "simulated" and inv.cpu_cores == 8
    spec = tmp_path / "gpus.json"
    spec.write_text(json.dumps({"gpus": [{"total": "40GiB", "free": "39GiB", "name": "A100"}], "cpu_cores": 12, "ram_available": "100GiB"}))
    inv = parse_simulated(str(spec))
    assert inv.gpus[0].name == "A100" and inv.cpu_cores == 12 and inv.ram_available == 100 * GiB


def test_cgroup_limits(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "memory.max").write_text(str(2 * GiB))
    (tmp_path / "memory.current").write_text(str(GiB // 2))
    assert ram_available(tmp_path) <= int(1.5 * GiB)


def test_plan_command_on_simulated_gpus_json():
    proc = subprocess.run(
        [sys.executable, "-m", "textsieve.cli", "plan", "--json", "--simulate-gpus", "80GiB:72GiB,24GiB:3GiB,24GiB:20GiB"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["inventory"]["source"] == "simulated"
    assert [g["replicas"] for g in out["plan"]["gpus"]] == [2, 0, 2]
    assert out["plan"]["device_kind"] == "gpu"


def test_plan_command_table_and_nothing_fits_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "textsieve.cli", "plan", "--simulate-gpus", "24GiB:2GiB", "--no-cpu-fallback"],
        capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PATH": ""},
    )
    assert proc.returncode == 1
    assert "NOTHING FITS" in proc.stdout and "< one replica" in proc.stdout
