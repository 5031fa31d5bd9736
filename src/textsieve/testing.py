"""Test and benchmark support: a detector that costs nothing.

Importing this module registers ``null``, a detector that finds no text
and spends no time, so that a run measures everything but detection: the
ceiling of the pipeline (bench/bench_pipeline.py) and the executors'
plumbing. A recipe cannot name it (the config accepts only textsieve's own
detectors); code selects it with ``null_config``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .config import RunConfig
from .detect.area import Detections
from .detect.registry import Detector, register
from .resources.planner import ModelCost


class NullDetector:
    """No text on any frame. It reads a pixel of every frame, so that frames
    must really have arrived (a shared-memory slot is mapped, a pickled frame
    unpickled), and nothing more."""

    name = "null"

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        for image in images:
            int(image[0, 0, 0])
        return [Detections() for _ in images]


def _load(device: str, replica: Any = None, **_: Any) -> NullDetector:
    return NullDetector()


def _check(**_: Any) -> None:
    return None


NULL = Detector("null", _load, _check, ModelCost("null", gpu_bytes=0, host_bytes=64 << 20, source="declared: costs nothing"),
                uses_torch=False, provider=__name__)
register(NULL)


def null_config(config: RunConfig) -> RunConfig:
    """``config`` with the null detector (bypassing the recipe's validation)."""
    return config.model_copy(update={"filter": config.filter.model_copy(update={"detector": "null"})})
