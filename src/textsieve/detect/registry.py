"""Model loaders: ``prepare`` names a model without building it; ``get``
builds it in the calling process, on the given device, the first time.

The parent process only ever calls ``prepare``: models live in the worker
that uses them (Data-Juicer built one per process in the parent's fork and
on every GPU, which is how np=40 ran GPUs out of memory). Adding a detector
means adding a loader here and a declared cost; nothing else changes.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError
from ..resources.inventory import GiB
from ..resources.planner import ModelCost, Replica

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelKey:
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


def _load_craft(device: str, replica: Replica | None = None, weights_dir: str | None = None, **params: Any):
    from .craft import CraftDetector, CraftParams, bind_torch

    if replica is not None:
        bind_torch(replica)
    return CraftDetector(device=device, params=CraftParams(**params), weights_dir=weights_dir)


def _load_ppocr(device: str, replica: Replica | None = None, model_path: str | None = None, **params: Any):
    from .ppocr import DbParams, PpOcrDetector

    threads = replica.threads if replica is not None and not device.startswith("cuda") else None
    memory = replica.memory_bytes if replica is not None and device.startswith("cuda") else None
    return PpOcrDetector(device=device, params=DbParams(**params), model_path=model_path, threads=threads,
                         memory_bytes=memory)


def _check_craft(weights_dir: str | None = None, **_: Any) -> None:
    from .weights import find_craft_weights

    find_craft_weights(weights_dir)


def _check_ppocr(model_path: str | None = None, **_: Any) -> None:
    from .ppocr import check_installed

    check_installed(model_path)


# A check finds a model's files without building it: a run refuses to start
# (rather than failing every sample in its replicas) when they are missing.
CHECKS: dict[str, Callable[..., None]] = {"craft": _check_craft, "ppocr": _check_ppocr}

# A loader builds its model on ``device`` and applies the replica's plan
# (threads, memory cap) in the way its framework needs.
LOADERS: dict[str, Callable[..., Any]] = {"craft": _load_craft, "ppocr": _load_ppocr}

# Used until `textsieve profile` has measured the model on the device kind.
# CRAFT: ~80 MB of weights, a CUDA context of 300-500 MB, and activations
# that grow with batch x frame area (canvas capped at 2560 px); Data-Juicer
# users report ~2 GB per EasyOCR process.
DECLARED_COSTS: dict[str, ModelCost] = {
    "craft": ModelCost("craft", gpu_bytes=int(2.5 * GiB), host_bytes=int(1.5 * GiB),
                       source="declared default (not measured: run `textsieve profile`)"),
    # PP-OCR det: 10 MB of weights; ONNX Runtime's CUDA context and arena
    # stay well under 1 GiB at batch 8 of 1080p; on a CPU ~0.4 GiB RSS at 1080p.
    "ppocr": ModelCost("ppocr", gpu_bytes=int(1.5 * GiB), host_bytes=int(0.6 * GiB),
                       source="declared default (not measured: run `textsieve profile --detector ppocr`)"),
}

_models: dict[tuple[ModelKey, str], Any] = {}


def prepare(name: str, **params: Any) -> ModelKey:
    if name not in LOADERS:
        raise ConfigError(f"unknown detector {name!r}; available: {', '.join(sorted(LOADERS))}")
    return ModelKey(name, tuple(sorted(params.items())))


def check(key: ModelKey) -> None:
    """Raise a ConfigError saying how to install what ``key`` needs, if missing."""
    CHECKS[key.name](**key.kwargs)


def get(key: ModelKey, device: str, replica: Replica | None = None) -> Any:
    """The model for ``key`` on ``device``, built here on first use, bound
    to ``replica``'s plan (threads, memory cap) when given."""
    slot = (key, device)
    if slot not in _models:
        log.debug("building %s on %s", key.name, device)
        _models[slot] = LOADERS[key.name](device, replica, **key.kwargs)
    return _models[slot]


def loaded() -> list[tuple[ModelKey, str]]:
    """What this process has built (tests use it to show the parent built nothing)."""
    return list(_models)


def release(key: ModelKey | None = None) -> None:
    """Drop cached models (all, or one key's) and give their memory back."""
    for slot in [s for s in _models if key is None or s[0] == key]:
        del _models[slot]
    free_device_cache()


def free_device_cache() -> None:
    """Give torch's cached GPU blocks back (after a release or an
    out-of-memory); ONNX Runtime's arena is capped by the plan instead."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing must never fail a run
        pass
