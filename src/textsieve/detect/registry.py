"""Model loaders: ``prepare`` names a model without building it; ``get``
builds it in the calling process, on the given device, the first time.

The parent process only ever calls ``prepare``: models live in the worker
that uses them (Data-Juicer built one per process in the parent's fork and
on every GPU, which is how np=40 ran GPUs out of memory). Adding a detector
means adding a loader here and a declared cost; nothing else changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError
from ..resources.inventory import GiB
from ..resources.planner import ModelCost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelKey:
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


def _load_craft(device: str, weights_dir: str | None = None, **params: Any):
    from .craft import CraftDetector, CraftParams

    return CraftDetector(device=device, params=CraftParams(**params), weights_dir=weights_dir)


LOADERS: dict[str, Callable[..., Any]] = {"craft": _load_craft}

# Used until `textsieve profile` has measured the model on the device kind.
# CRAFT: ~80 MB of weights, a CUDA context of 300-500 MB, and activations
# that grow with batch x frame area (canvas capped at 2560 px); Data-Juicer
# users report ~2 GB per EasyOCR process.
DECLARED_COSTS: dict[str, ModelCost] = {
    "craft": ModelCost("craft", gpu_bytes=int(2.5 * GiB), host_bytes=int(1.5 * GiB),
                       source="declared default (not measured: run `textsieve profile`)"),
}

_models: dict[tuple[ModelKey, str], Any] = {}


def prepare(name: str, **params: Any) -> ModelKey:
    if name not in LOADERS:
        raise ConfigError(f"unknown detector {name!r}; available: {', '.join(sorted(LOADERS))}")
    return ModelKey(name, tuple(sorted(params.items())))


def get(key: ModelKey, device: str) -> Any:
    """The model for ``key`` on ``device``, built here on first use."""
    slot = (key, device)
    if slot not in _models:
        log.debug("building %s on %s", key.name, device)
        _models[slot] = LOADERS[key.name](device, **key.kwargs)
    return _models[slot]


def loaded() -> list[tuple[ModelKey, str]]:
    """What this process has built (tests use it to show the parent built nothing)."""
    return list(_models)


def release(key: ModelKey | None = None) -> None:
    """Drop cached models (all, or one key's) and give their memory back."""
    for slot in [s for s in _models if key is None or s[0] == key]:
        del _models[slot]
    try:
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # releasing must never fail a run
        pass
