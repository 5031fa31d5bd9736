"""The detectors textsieve can run, one small :class:`Detector` description
each: how to check its files are there, how to build it on a device, and
what one replica costs until `textsieve profile` has measured it.

The parent process only checks and names models: they are built in the
worker that uses them (Data-Juicer built one per process in the parent's
fork and on every GPU, which is how np=40 ran GPUs out of memory).
``get`` builds a model in the calling process, on the given device, the
first time. Adding a detector means adding one description here.
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
class Detector:
    name: str
    # builds the model on ``device`` and applies the replica's plan (threads,
    # memory cap) in the way its framework needs
    load: Callable[..., Any]
    # finds the model's files without building it: a run refuses to start
    # (rather than failing every sample in its replicas) when they are missing
    check: Callable[..., None]
    # used until `textsieve profile` has measured the model on the device kind
    declared_cost: ModelCost
    uses_torch: bool  # whether torch's allocator counters describe its GPU memory
    # modules its build imports that take seconds to import: a fork server imports them once, and
    # the CPU replicas forked from it start without importing them again (runtime/workers.py)
    imports: tuple[str, ...] = ()
    # the module that registers this description, for entries defined outside
    # this file (tests, benchmarks): worker processes import it to know them
    provider: str | None = None


def _load_craft(device: str, replica: Replica | None = None, weights_dir: str | None = None,
                precision: str = "fp32", **params: Any):
    from .craft import CraftDetector, CraftParams, bind_torch

    if replica is not None:
        bind_torch(replica)
    return CraftDetector(device=device, params=CraftParams(**params), weights_dir=weights_dir, precision=precision)


def _check_craft(weights_dir: str | None = None, **_: Any) -> None:
    from .weights import find_craft_weights

    find_craft_weights(weights_dir)


def _load_ppocr(device: str, replica: Replica | None = None, model_path: str | None = None, **params: Any):
    from .ppocr import DbParams, PpOcrDetector

    threads = replica.threads if replica is not None and not device.startswith("cuda") else None
    memory = replica.memory_bytes if replica is not None and device.startswith("cuda") else None
    return PpOcrDetector(device=device, params=DbParams(**params), model_path=model_path, threads=threads,
                         memory_bytes=memory)


def _check_ppocr(model_path: str | None = None, **_: Any) -> None:
    from .ppocr import check_installed

    check_installed(model_path)


DETECTORS: dict[str, Detector] = {d.name: d for d in (
    # CRAFT: ~80 MB of weights, a CUDA context of 300-500 MB, and activations
    # that grow with batch x frame area (canvas capped at 2560 px); Data-Juicer
    # users report ~2 GB per EasyOCR process.
    Detector("craft", _load_craft, _check_craft,
             ModelCost("craft", gpu_bytes=int(2.5 * GiB), host_bytes=int(1.5 * GiB),
                       source="declared default (not measured: run `textsieve profile`)"),
             uses_torch=True, imports=("torch", "easyocr", "textsieve.detect.craft")),
    # PP-OCR det: 10 MB of weights; ONNX Runtime's CUDA context and arena
    # stay well under 1 GiB at batch 8 of 1080p; on a CPU ~0.4 GiB RSS at 1080p.
    Detector("ppocr", _load_ppocr, _check_ppocr,
             ModelCost("ppocr", gpu_bytes=int(1.5 * GiB), host_bytes=int(0.6 * GiB),
                       source="declared default (not measured: run `textsieve profile --detector ppocr`)"),
             uses_torch=False),
)}


@dataclass(frozen=True)
class ModelKey:
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def detector(self) -> Detector:
        return DETECTORS[self.name]


_models: dict[tuple[ModelKey, str], Any] = {}


def register(detector: Detector) -> None:
    """Add a description from elsewhere (a test-only detector, say). A
    recipe still cannot name it: the config accepts only textsieve's own."""
    DETECTORS[detector.name] = detector


def describe(name: str) -> Detector:
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}; available: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name]


def prepare(name: str, **params: Any) -> ModelKey:
    describe(name)
    return ModelKey(name, tuple(sorted(params.items())))


def check(key: ModelKey) -> None:
    """Raise a ConfigError saying how to install what ``key`` needs, if missing."""
    key.detector.check(**key.kwargs)


def get(key: ModelKey, device: str, replica: Replica | None = None) -> Any:
    """The model for ``key`` on ``device``, built here on first use, bound
    to ``replica``'s plan (threads, memory cap) when given."""
    slot = (key, device)
    if slot not in _models:
        log.debug("building %s on %s", key.name, device)
        _models[slot] = key.detector.load(device, replica, **key.kwargs)
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
