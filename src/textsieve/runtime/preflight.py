"""What is checked before a run starts, so that a mistake stops it at once
(exit 2, nothing written) instead of failing every sample: the dataset can
be read, the outputs replace nothing textsieve did not write, the calibration file applies, the detector's files are installed.
(Language codes are checked with the recipe, where the line is known.) (A device that does not exist is refused
by the planner's inventory: see :func:`textsieve.runtime.planning.inventory_for`.)
"""

from __future__ import annotations

from ..calibration import Calibration, load_calibration
from ..config import OcrFilter, RunConfig
from ..data.dataset import check_dataset
from ..data.ownership import check_outputs
from ..detect import registry
from ..errors import ConfigError
from .planning import model_specs


def resolve_calibration(op: OcrFilter) -> Calibration | None:
    """The op's calibration, read and checked once for the whole run."""
    if op.calibration is None:
        return None
    calibration = load_calibration(op.calibration)
    calibration.check_applies(op)
    return calibration


def preflight(config: RunConfig) -> Calibration | None:
    """Check everything a run needs but the devices; returns the resolved calibration."""
    config.require_io()
    check_dataset(config.dataset)
    check_outputs(config)  # before the lock, the journal or anything else is created
    calibration = resolve_calibration(config.filter)
    op = config.filter
    if op.segment_s is not None and config.executor == "ray":
        raise ConfigError("segment_s (pieces of long videos) runs on the local and serial executors; on Ray a "
                          "video's pieces would travel in one message: run it locally, or without segment_s")
    if op.segment_s is not None and op.detector == "cascade":
        raise ConfigError("segment_s with detector: cascade is not supported: the cascade routes whole videos; "
                          "use detector craft or ppocr with segment_s")
    if config.filter.detector == "cascade" and calibration is None:
        raise ConfigError("detector cascade needs a calibration (the map and the routing margins): make one with "
                          "`textsieve calibrate --detector cascade` and give it as `calibration: FILE`")
    for model in model_specs(config):
        registry.check(registry.prepare(model.name, **dict(model.params)))
    if op.kind_frames is not None:
        # the kind frames are judged by PP-OCR in the decoders, whatever the op's detector
        registry.check(registry.prepare("ppocr"))
    return calibration
