"""Test and benchmark support: detectors that cost nothing.

Importing this module registers ``null``, a detector that finds no text
and spends no time, so that a run measures everything but detection: the
ceiling of the pipeline (bench/bench_pipeline.py) and the executors'
plumbing; and ``red``, whose ratio is the frame's mean red level, so that a
test can see through any executor which RGB the decoders produced
(tests/video/test_color.py). A recipe cannot name them (the config accepts only
textsieve's own detectors); code selects them with ``null_config`` /
``with_detector``.
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


class RedDetector:
    """One full-width box as tall as the frame's mean red level (0..255)
    is of 255: the frame's ratio is ``mean(R) / 255``, a function of the
    colour conversion alone."""

    name = "red"

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for image in images:
            height, width = image.shape[:2]
            level = float(image[:, :, 0].mean()) / 255.0
            out.append(Detections(horizontal=[[0.0, float(width), 0.0, height * level]]))
        return out


def _load(device: str, replica: Any = None, **_: Any) -> NullDetector:
    return NullDetector()


def _load_red(device: str, replica: Any = None, **_: Any) -> RedDetector:
    return RedDetector()


def _check(**_: Any) -> None:
    return None


NULL = Detector("null", _load, _check, ModelCost("null", gpu_bytes=0, host_bytes=64 << 20, source="declared: costs nothing"),
                uses_torch=False, provider=__name__)
register(NULL)
RED = Detector("red", _load_red, _check, ModelCost("red", gpu_bytes=0, host_bytes=64 << 20, source="declared: costs nothing"),
               uses_torch=False, provider=__name__)
register(RED)


def with_detector(config: RunConfig, name: str) -> RunConfig:
    """``config`` with one of this module's detectors (bypassing the recipe's validation)."""
    return config.model_copy(update={"filter": config.filter.model_copy(update={"detector": name})})


def null_config(config: RunConfig) -> RunConfig:
    """``config`` with the null detector (bypassing the recipe's validation)."""
    return with_detector(config, "null")
