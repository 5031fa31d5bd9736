"""The typed configuration of a run: the op's parameters and textsieve's own
settings, validated by pydantic. This module reads no file and imports no
detector: recipes are read in :mod:`textsieve.recipe`, and what needs the
machine (models, devices, the dataset, a calibration file) is checked by
:mod:`textsieve.runtime.preflight` before a run starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import ConfigError
from .kind_rules import Kind, KindRules


@dataclass(frozen=True)
class Flag:
    """How a setting is spelled on the command line where its field's name
    and type do not say it. The flags of ``textsieve run`` are generated from
    the fields of :class:`RunConfig` and :class:`OcrFilter` (cli.py): a field's
    ``description`` is its help, its default is the one the help names, a
    ``Literal`` gives the choices. Each setting is declared here once."""

    name: str | None = None  # e.g. "--address" for ray_address; default: --<field-name>
    # a setting on by default gets --no-<name>, which turns it off
    turns_off: bool = False
    nargs: str | None = None  # "+": a list of values
    group: str | None = None  # the argument group that --help lists it under
    # a setting with no flag, and why (a recipe spelling a flag cannot carry)
    recipe_only: str | None = None


class OcrFilter(BaseModel):
    """The op's parameters: Data-Juicer's, then textsieve's opt-in extras."""

    # strict: a quoted number ('0.1') or a boolean where a count goes is a
    # mistake in the recipe, not something to coerce silently
    model_config = ConfigDict(extra="forbid", strict=True)

    min_area_ratio: float = Field(0.0, ge=0.0, le=1.0, description="lowest text area ratio a kept video may have")
    max_area_ratio: float = Field(1.0, ge=0.0, le=1.0, description="highest text area ratio a kept video may have")
    frame_sample_num: int = Field(3, ge=1, description="frames sampled per video")
    languages_to_detect: Annotated[str | list[str], Flag("--languages", nargs="+")] = Field(
        ["ch_sim", "en"], description="EasyOCR language codes (validated; CRAFT ignores them)")
    any_or_all: Literal["any", "all"] = Field(
        "any", description="a sample with several videos is kept when any of them is, or all are")
    reversed_range: bool = Field(
        False, description="keep the videos outside [min_area_ratio, max_area_ratio] instead (Data-Juicer's)")
    video_key: str = Field("videos", description="sample field holding the video list")
    mem_required: Annotated[str | float | int | None, Flag(
        recipe_only="a bare number means GiB in a recipe, but a flag's value is text, which parse_size reads as bytes"
    )] = Field(None, description="Data-Juicer's per-op memory hint: a size (3GB) or a number of GiB; "
                                 "the planner takes it as a replica's GPU cost")
    # opt-in, beyond Data-Juicer; the defaults keep its answers
    area_mode: Literal["dj", "union"] = Field(
        "dj", description="dj (Data-Juicer's: the sum of the boxes' areas) or union (the area they cover)")
    aggregate: Literal["mean", "max", "p90"] = Field("mean", description="per-video statistic over its frames")
    sampling: Literal["uniform", "interval", "keyframe"] = Field("uniform", description="frame sampling")
    # at least 10 ms: finer steps round to zero in the samplers' millisecond fractions
    interval_s: float = Field(1.0, ge=0.01, description="seconds between frames when sampling is interval")
    # the text detector: CRAFT (Data-Juicer's); PP-OCR's DBNet, an order of
    # magnitude cheaper, whose ratios are its own unless a calibration maps them
    # to CRAFT's; or the cascade: PP-OCR first, CRAFT for what it cannot settle
    detector: Literal["craft", "ppocr", "cascade"] = Field(
        "craft", description="craft (Data-Juicer's), ppocr (PP-OCR DBNet, an order of magnitude faster, its own "
                             "errors), or cascade (ppocr first, CRAFT re-judges what it cannot settle: CRAFT's "
                             "decisions); see docs/fast-detector.md")
    max_side: int | None = Field(
        None, ge=32, description="scale frames to this long side before detection; none: native size")
    # CRAFT's arithmetic: fp32 is Data-Juicer's; bf16 and fp16 run the network
    # under torch.autocast (bf16 uses the CPU's AMX/AVX-512 BF16 units, fp16 a
    # GPU's tensor cores): several times faster, boxes that differ slightly
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="CRAFT's arithmetic: fp32 (Data-Juicer's ratios), bf16 or fp16 (torch autocast: several "
                            "times faster, ratios slightly off Data-Juicer's; see docs/fast-detector.md)")
    # YUV -> RGB: dj converts as Data-Juicer's pinned PyAV 13.1 does (BT.601,
    # tags ignored) on any PyAV; tagged honours the stream's colour matrix and
    # range (video/color.py, docs/semantics.md "Colour conversion")
    color_conversion: Literal["dj", "tagged"] = Field(
        "dj", description="YUV to RGB: dj (Data-Juicer's: BT.601 whatever the stream's tag, on any PyAV) or tagged "
                          "(the stream's own colour matrix and range; not Data-Juicer's ratios on BT.709 video)")
    calibration: str | None = Field(
        None, description="a `textsieve calibrate` file mapping the fast detector's ratios to CRAFT's, with the "
                          "cascade's margins")
    # long videos in pieces (docs/semantics.md, "Pieces"): each piece of this many
    # seconds judged on its own; the video by its pieces' mean, any or all
    segment_s: float | None = Field(
        None, ge=0.01, description="judge long videos in pieces of this many seconds (segments.jsonl: the ranges "
                                   "to keep); none: whole videos")
    segment_aggregate: Literal["mean", "any", "all"] = Field(
        "mean", description="a video judged in pieces: by the mean of its pieces' ratios, or kept when any or all "
                            "pieces are")
    save_boxes: Annotated[bool, Flag(turns_off=True)] = Field(
        True, description="each frame's boxes in stats.jsonl (compact polygons), for `textsieve report`")
    # kinds of text (docs/kinds.md): opt-in; a recipe without these keys gets
    # Data-Juicer's answers, byte for byte
    max_overlay_ratio: float | None = Field(
        None, ge=0.0, le=1.0, description="highest ratio of overlay text (watermarks, logos, score bugs, read-outs) "
                                          "a kept video may have; none: no limit")
    max_subtitle_ratio: float | None = Field(
        None, ge=0.0, le=1.0, description="highest ratio of burned-in subtitles a kept video may have; none: no limit")
    max_screen_ratio: float | None = Field(
        None, ge=0.0, le=1.0, description="highest ratio of screen text (slides, screen recordings, credits) a kept "
                                          "video may have; none: no limit")
    max_scene_ratio: float | None = Field(
        None, ge=0.0, le=1.0, description="highest ratio of scene text (signs, shop fronts, plates) a kept video may "
                                          "have; none: no limit")
    count_kinds: Annotated[list[Kind] | None, Flag(nargs="+")] = Field(
        None, description="the kinds of text that min/max_area_ratio count; none: all text, as Data-Juicer")
    kind_frames: int | None = Field(
        None, ge=2, description="judge the kinds on this many more frames per video, by the fast detector (the "
                                "ratios still come from the sampled frames); none: the sampled frames alone")
    kind_rules: Annotated[KindRules, Flag(recipe_only="a group of parameters: set them in the recipe under "
                                                      "kind_rules")] = Field(
        default_factory=KindRules, description="the kind rules' parameters (docs/kinds.md)")

    @field_validator("languages_to_detect")
    @classmethod
    def _languages(cls, value: str | list[str]) -> list[str]:
        # the codes are checked against EasyOCR's list before a run (runtime.preflight):
        # this module reads no file and imports no detector
        return [value] if isinstance(value, str) else list(value)

    @property
    def kind_limits(self) -> dict[str, float]:
        """The per-kind maxima that are set."""
        limits = {"overlay": self.max_overlay_ratio, "subtitle": self.max_subtitle_ratio,
                  "screen": self.max_screen_ratio, "scene": self.max_scene_ratio}
        return {kind: limit for kind, limit in limits.items() if limit is not None}

    def without_kinds(self) -> dict:
        """The op's values without the opt-in keys left at their defaults (the kinds' keys,
        ``precision: fp32``): exactly what the op dumped before they existed, so that a journal
        written then still resumes."""
        dumped = self.model_dump()
        if not self.kinds and self.kind_rules == KindRules():
            for key in KIND_KEYS:
                dumped.pop(key)
        if self.precision == "fp32":  # opt-in too: a run at Data-Juicer's arithmetic dumps as before it existed
            dumped.pop("precision")
        return dumped

    @property
    def kinds(self) -> bool:
        """Whether the kinds of text are judged: a per-kind key is set."""
        return bool(self.kind_limits) or self.count_kinds is not None or self.kind_frames is not None

    @model_validator(mode="after")
    def _kinds(self) -> OcrFilter:
        if self.kinds and self.segment_s is not None:
            # a video in pieces has a kind analysis per piece, and no rule yet for merging them
            raise ValueError("the kinds of text (max_*_ratio of a kind, count_kinds, kind_frames) work on whole "
                             "videos: remove segment_s, or the kind keys")
        if self.count_kinds is not None and not self.count_kinds:
            raise ValueError("count_kinds is empty: list the kinds the ratio counts (overlay, subtitle, screen, "
                             "scene), or remove the key to count all text")
        if self.count_kinds is not None and len(set(self.count_kinds)) != len(self.count_kinds):
            raise ValueError(f"count_kinds {self.count_kinds} names a kind twice: each kind is counted once")
        if self.count_kinds is not None and self.calibration is not None:
            # the calibration maps the ratio of all text; a ratio of some kinds has no map
            raise ValueError("count_kinds with a calibration: the calibration maps the ratio of all text, not of "
                             "some kinds; use detector craft with count_kinds, or drop count_kinds")
        if not self.kinds and self.kind_rules != KindRules():
            raise ValueError("kind_rules is set but no kind key is (max_<kind>_ratio, count_kinds, kind_frames): "
                             "the kinds would not be judged; add one, or remove kind_rules")
        return self

    @model_validator(mode="after")
    def _precision(self) -> OcrFilter:
        if self.precision != "fp32" and self.detector == "ppocr":
            # PP-OCR runs in ONNX Runtime at fp32; silently ignoring the key would hide a wrong recipe
            raise ValueError(f"precision {self.precision} applies to CRAFT (detector craft or cascade), not to "
                             "detector ppocr: remove precision, or use detector craft")
        return self

    @model_validator(mode="after")
    def _range(self) -> OcrFilter:
        # an empty range keeps nothing (or, reversed, everything): never what a recipe means
        if self.min_area_ratio > self.max_area_ratio:
            raise ValueError(f"min_area_ratio {self.min_area_ratio} is above max_area_ratio {self.max_area_ratio}")
        return self


KIND_KEYS = ("max_overlay_ratio", "max_subtitle_ratio", "max_screen_ratio", "max_scene_ratio", "count_kinds",
             "kind_frames", "kind_rules")

PLANNING = "planning"  # the argument group of the memory plan's settings (docs/planner.md)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dataset_path: Annotated[str | None, Flag("--dataset")] = Field(
        None, description="the dataset: JSON lines or Parquet, a folder, a glob, an archive or a URL (required by "
                          "run; plan and profile do without)")
    export_path: Annotated[str | None, Flag("--export")] = Field(
        None, description="export folder, or a .jsonl, .json or .parquet file for the kept samples")
    np: int | None = Field(
        None, ge=1, description="cap on detector replicas (Data-Juicer's np: its model copies); decoders follow "
                                "the cores; none: what the plan fits")
    filter: OcrFilter = Field(default_factory=OcrFilter)
    # textsieve's own settings
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    batch_size: int | None = Field(
        None, ge=1, description="frames per detector forward pass; none: 8 on a GPU, 1 on a CPU")
    weights_dir: str | None = Field(
        None, description="folder holding the detector weights (craft_mlt_25k.pth); none: the installed package's")
    strict: bool = Field(False, description="exit 1 if any sample ends in errors.jsonl")
    # Data-Juicer's: shards of this many bytes (0: one file per output); the format of shards
    export_shard_size: int = Field(
        0, ge=0, description="write outputs as shards of about this many bytes, with a manifest (Data-Juicer's "
                             "key; 0: one file each)")
    export_type: Literal["jsonl", "parquet"] = Field(
        "jsonl", description="format of the shards and of the kept file (a .parquet export_path: parquet)")
    # Data-Juicer's: with export_path naming a file, kept samples carry their
    # stats only if true; <stem>_stats.jsonl holds them either way
    keep_stats_in_res_ds: bool = Field(
        False, description="with export_path naming a file, the kept samples carry their stats (Data-Juicer's "
                           "key; <stem>_stats.jsonl holds them either way)")
    executor: Literal["local", "serial", "ray"] = Field(
        "local", description="local: decoders and replicas on this machine; serial: one process; ray: a Ray cluster")
    ray_address: Annotated[str | None, Flag("--address")] = Field(
        None, description="Ray cluster address for executor ray (auto, ray://host:10001); none: start a local one")
    decode_timeout_s: float = Field(
        300.0, gt=0, description="per-video decode time limit in seconds; past it the decoder is stopped: `timeout`")
    detect_timeout_s: float = Field(
        600.0, gt=0, description="per-batch detector time limit in seconds; a batch past it is retried once, "
                                 "then `timeout`")
    failure_streak: int = Field(
        5, ge=1, description="stop the run when this many samples in a row fail at detection the same way")
    max_video_pixels: int | None = Field(
        None, ge=1, description="largest frame a video may have, in pixels; none: what the frame buffer holds "
                                "(docs/failures.md)")
    max_video_duration_s: float = Field(24 * 3600.0, gt=0, description="longest video judged, in seconds")
    # planning (see docs/planner.md)
    gpu_reserve: Annotated[str, Flag(group=PLANNING)] = Field(
        "1GiB", description="memory kept free on every GPU, at least")
    gpu_reserve_fraction: Annotated[float, Flag(group=PLANNING)] = Field(
        0.05, ge=0, lt=1, description="... or this share of its total")
    max_replicas_per_gpu: Annotated[int, Flag(group=PLANNING)] = Field(
        2, ge=1, description="detector replicas on one GPU, at most")
    cpu_fallback: Annotated[bool, Flag(turns_off=True, group=PLANNING)] = Field(
        True, description="run on the CPU when no GPU fits a replica (false: fail instead)")
    plan_frame_size: Annotated[str, Flag(group=PLANNING)] = Field(
        "1920x1080", description="largest frame size to plan memory for, WIDTHxHEIGHT")
    simulate_gpus: Annotated[str | None, Flag(group=PLANNING)] = Field(
        None, description='simulated GPUs, "TOTAL:FREE,..." (e.g. "80GiB:72GiB,24GiB:3GiB") or a JSON file')

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
    def _export_type_from_the_path(self) -> RunConfig:
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
