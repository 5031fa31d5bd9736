"""The typed configuration of a run: the op's parameters and textsieve's own
settings, validated by pydantic. This module reads no file and imports no
detector: recipes are read in :mod:`textsieve.recipe`, and what needs the
machine (models, devices, the dataset, a calibration file) is checked by
:mod:`textsieve.runtime.preflight` before a run starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .errors import ConfigError


class OcrFilter(BaseModel):
    """The op's parameters: Data-Juicer's, then textsieve's opt-in extras."""

    # strict: a quoted number ('0.1') or a boolean where a count goes is a
    # mistake in the recipe, not something to coerce silently
    model_config = ConfigDict(extra="forbid", strict=True)

    min_area_ratio: float = Field(0.0, ge=0.0, le=1.0)
    max_area_ratio: float = Field(1.0, ge=0.0, le=1.0)
    frame_sample_num: int = Field(3, ge=1)
    languages_to_detect: Union[str, list[str]] = ["ch_sim", "en"]
    any_or_all: Literal["any", "all"] = "any"
    reversed_range: bool = False  # Data-Juicer's: keep the videos outside [min, max] instead
    video_key: str = "videos"
    mem_required: Union[str, float, int, None] = None  # Data-Juicer's per-op memory hint
    # opt-in, beyond Data-Juicer; the defaults keep its answers
    area_mode: Literal["dj", "union"] = "dj"
    aggregate: Literal["mean", "max", "p90"] = "mean"
    sampling: Literal["uniform", "interval", "keyframe"] = "uniform"
    # at least 10 ms: finer steps round to zero in the samplers' millisecond fractions
    interval_s: float = Field(1.0, ge=0.01)
    # the text detector: CRAFT (Data-Juicer's); PP-OCR's DBNet, an order of
    # magnitude cheaper, whose ratios are its own unless a calibration maps them
    # to CRAFT's; or the cascade: PP-OCR first, CRAFT for what it cannot settle
    detector: Literal["craft", "ppocr", "cascade"] = "craft"
    max_side: Optional[int] = Field(None, ge=32)  # frames scaled to this long side first; None: native
    # YUV -> RGB: dj converts as Data-Juicer's pinned PyAV 13.1 does (BT.601,
    # tags ignored) on any PyAV; tagged honours the stream's colour matrix and
    # range (video/color.py, docs/semantics.md "Colour conversion")
    color_conversion: Literal["dj", "tagged"] = "dj"
    calibration: Optional[str] = None  # a file from `textsieve calibrate`: fast ratios -> CRAFT's, and the cascade's margins
    # long videos in pieces (docs/semantics.md, "Pieces"): each piece of this many
    # seconds judged on its own; the video by its pieces' mean, any or all
    segment_s: Optional[float] = Field(None, ge=0.01)
    segment_aggregate: Literal["mean", "any", "all"] = "mean"
    save_boxes: bool = True  # each frame's boxes in stats.jsonl (compact polygons), for `textsieve report`

    @field_validator("languages_to_detect")
    @classmethod
    def _languages(cls, value: Union[str, list[str]]) -> list[str]:
        # the codes are checked against EasyOCR's list before a run (runtime.preflight):
        # this module reads no file and imports no detector
        return [value] if isinstance(value, str) else list(value)

    @model_validator(mode="after")
    def _range(self) -> "OcrFilter":
        # an empty range keeps nothing (or, reversed, everything): never what a recipe means
        if self.min_area_ratio > self.max_area_ratio:
            raise ValueError(f"min_area_ratio {self.min_area_ratio} is above max_area_ratio {self.max_area_ratio}")
        return self


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dataset_path: str | None = None  # required by `run`; `plan` and `profile` do without
    export_path: str | None = None
    np: int | None = Field(None, ge=1)  # Data-Juicer's process count (model copies): caps the detector replicas
    filter: OcrFilter = Field(default_factory=OcrFilter)
    # textsieve's own settings
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int | None = Field(None, ge=1)  # frames per forward pass; default: 8 on a GPU, 1 on a CPU
    weights_dir: str | None = None
    strict: bool = False  # exit non-zero when any sample ends in errors.jsonl
    # Data-Juicer's: shards of this many bytes (0: one file per output); the format of shards
    export_shard_size: int = Field(0, ge=0)
    export_type: Literal["jsonl", "parquet"] = "jsonl"
    # Data-Juicer's: with export_path naming a file, kept samples carry their
    # stats only if true; <stem>_stats.jsonl holds them either way
    keep_stats_in_res_ds: bool = False
    executor: Literal["local", "serial", "ray"] = "local"  # serial: one process
    ray_address: str | None = None  # for executor ray: "auto", "ray://host:10001", or None for a local cluster
    decode_timeout_s: float = Field(300.0, gt=0)  # per video; past it the decoder is stopped: `timeout`
    detect_timeout_s: float = Field(600.0, gt=0)  # per detector batch; past it the replica is stopped and the batch retried once
    failure_streak: int = Field(5, ge=1)  # this many samples in a row failing at detection the same way stop the run
    # None: derived from the frame budget (video_pixel_limit); a number: that many pixels a frame, at most
    max_video_pixels: Optional[int] = Field(None, ge=1)
    max_video_duration_s: float = Field(24 * 3600.0, gt=0)
    # planning (see docs/planner.md)
    gpu_reserve: str = "1GiB"  # kept free on every GPU: at least this ...
    gpu_reserve_fraction: float = Field(0.05, ge=0, lt=1)  # ... or this share of its total
    max_replicas_per_gpu: int = Field(2, ge=1)
    cpu_fallback: bool = True  # run on the CPU when no GPU fits a replica
    plan_frame_size: str = "1920x1080"  # largest frame size expected, for the memory plan
    simulate_gpus: str | None = None  # e.g. "80GiB:72GiB,24GiB:3GiB" (total:free) or a JSON file
    _recipe: object = PrivateAttr(default=None)  # recipe.RecipePlan of a Data-Juicer recipe: its other ops

    @field_validator("gpu_reserve", mode="before")
    @classmethod
    def _size(cls, value: str | int) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError("a size such as 1GiB, 512MiB or a number of bytes")
        from .resources.inventory import parse_size

        parse_size(str(value))
        return str(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError("use auto, cpu, cuda or cuda:N")
        return value

    @field_validator("simulate_gpus")
    @classmethod
    def _simulated(cls, value: str | None) -> str | None:
        # an inline spec is checked here; a JSON file when the inventory reads it
        if value is not None and not value.strip().endswith(".json"):
            from .resources.inventory import parse_simulated

            parse_simulated(value, cpu=1, ram=1)
        return value

    @field_validator("plan_frame_size")
    @classmethod
    def _frame_size(cls, value: str) -> str:
        w, sep, h = str(value).lower().partition("x")
        if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise ValueError("use WIDTHxHEIGHT, e.g. 1920x1080")
        return str(value).lower()

    @model_validator(mode="after")
    def _export_type_from_the_path(self) -> "RunConfig":
        # as in Data-Juicer: the format follows export_path's suffix unless export_type is given
        if "export_type" not in self.model_fields_set and str(self.export_path or "").endswith(".parquet"):
            self.export_type = "parquet"
        return self

    @property
    def video_pixel_limit(self) -> int:
        """The largest frame (in pixels) a video may have: ``max_video_pixels``
        when given, else what the frame budget holds. Decoded frames wait in a
        buffer of at least 512 MiB that must hold two videos' sampled frames
        (one decoding while the other is detected), so a video's frames may
        take half of it: 512 MiB / (2 x 3 bytes x frame_sample_num), never
        below the planned frame size (the plan grows the buffer for it) and
        never above 8192x8192. A config alone decides it, not the machine,
        so that every executor and machine refuses the same videos."""
        if self.max_video_pixels is not None:
            return self.max_video_pixels
        width, height = self.frame_size
        budget = (512 << 20) // (2 * 3 * self.filter.frame_sample_num)
        return min(8192 * 8192, max(width * height, budget))

    @property
    def frame_size(self) -> tuple[int, int]:
        w, _, h = self.plan_frame_size.partition("x")
        return int(w), int(h)

    def require_io(self) -> None:
        for key, flag in (("dataset_path", "--dataset"), ("export_path", "--export")):
            if not getattr(self, key):
                raise ConfigError(f"{key} is required (recipe key or flag {flag})")

    @property
    def dataset(self) -> str:
        """The dataset path: absolute for a local one (file, folder or glob), a URL as given;
        each part of a mixture (``0.5 a.jsonl 0.5 b.jsonl``) alike."""
        from .data.sources import absolute

        return absolute(str(self.dataset_path))

    @property
    def export_file(self) -> Path | None:
        """Data-Juicer's export_path names a file (``out/result.jsonl``,
        ``.json`` or ``.parquet``): the kept samples go there, in that format,
        their stats to ``<stem>_stats.jsonl``, and the rest beside it. None
        for a folder."""
        path = Path(self.export_path)
        return path if path.suffix in (".jsonl", ".json", ".parquet") else None

    @property
    def export_dir(self) -> Path:
        return self.export_file.parent if self.export_file else Path(self.export_path)

    @property
    def sharded(self) -> bool:
        """Outputs as shards with a manifest (data/shards.py), not single files."""
        return self.export_shard_size > 0

    @property
    def kept_shards(self) -> str:
        """Sharded runs: the folder of kept shards, inside export_dir. An
        export_path naming a file (``out/result.parquet``) becomes that
        folder, as Data-Juicer's Ray exporter writes it (Ray Data, pyarrow
        and Data-Juicer read such a folder as one dataset); else ``kept``."""
        file = self.export_file
        return file.name if file is not None else "kept"

    @property
    def kept_file(self) -> Path:
        """Where the kept samples are written as JSON lines (a Parquet
        export_path gets them converted when the run finishes)."""
        file = self.export_file
        if file is None:
            return Path(self.export_path) / "kept.jsonl"
        return file.with_suffix(".kept.jsonl") if file.suffix == ".parquet" else file
