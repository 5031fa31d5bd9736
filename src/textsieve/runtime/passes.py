"""The two measuring passes of ``textsieve calibrate``, kept.

``<export>/calibrate/passes.json`` holds, per detector pass (the fast one
and CRAFT), every video it measured (its frames' times and ratios), the
videos it could not judge, and the seconds it took. Detection is the whole
cost of a calibration (minutes to hours); fitting is a second. So a refused
calibration is accepted (``--force``) or extended (``--samples`` more)
from this file without detecting again, and a calibration stopped part-way
resumes: each pass's run is merged into the file when it ends, however it
ends, and what a killed session left in a pass's run folder is merged at
the next start.

The file is tied to the settings that change what a pass measures (the
op's sampling, resolution, area and colour settings, the fast model's
checksum): measurements under other settings are never mixed in, and the
calibration says which setting changed and how to start over.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import KIND_KEYS, OcrFilter, RunConfig
from ..data.atomic import write_atomic
from ..data.export import iter_records, read_jsonl
from ..data.strict_json import dumps
from ..errors import ConfigError
from ..redact import mask_url

FORMAT = "textsieve-calibration-passes/1"
FAST, REFERENCE = "ppocr", "craft"
# the fast pass first: it is cheap, and with it an earlier calibration tells
# what the cascade would cost before CRAFT's pass, the expensive one, starts
PASSES = (FAST, REFERENCE)
# op fields that do not change what a pass measures per video (its frames'
# ratios): thresholds, decisions and aggregates are applied to them after; the
# video key only picks the videos
NOT_MEASURED = {"min_area_ratio", "max_area_ratio", "any_or_all", "reversed_range", "calibration", "save_boxes",
                "mem_required", "video_key", "aggregate", "segment_aggregate"}


def pass_op(config: RunConfig, name: str) -> OcrFilter:
    """The op a pass runs: the user's sampling and area settings; CRAFT at
    native resolution (Data-Juicer's ratios, the reference), the fast
    detector at the run's ``max_side``; no thresholds, calibration or boxes."""
    op = config.filter
    return op.model_copy(update={
        # CRAFT's pass is the reference: Data-Juicer's fp32 whatever the run's precision
        "detector": name, "max_side": op.max_side if name == FAST else None, "calibration": None, "precision": "fp32",
        "min_area_ratio": 0.0, "max_area_ratio": 1.0, "any_or_all": "any", "reversed_range": False,
        "save_boxes": False, **{key: OcrFilter.model_fields[key].get_default(call_default_factory=True)
                                for key in KIND_KEYS},
    })


def pass_settings(config: RunConfig) -> dict[str, dict]:
    """Per pass, what its measurements depend on."""
    out = {}
    for name in PASSES:
        settings = {k: v for k, v in pass_op(config, name).without_kinds().items() if k not in NOT_MEASURED}
        if name == FAST:
            from ..detect.ppocr import find_ppocr_model

            # $TEXTSIEVE_PPOCR_MODEL may point at another model: its ratios are other ratios
            settings["model_sha256"] = hashlib.sha256(find_ppocr_model().read_bytes()).hexdigest()
        # CRAFT's weights are checked against EasyOCR's published checksum on
        # load (detect/weights.py): wherever they lie, they are the same weights
        out[name] = settings
    return out


@dataclass
class Measured:
    """One video as one detector measured it."""

    frame_times: list[float]
    frame_ratios: list[float]


@dataclass
class PassTiming:
    """Wall seconds of a pass's runs and the videos they measured: the
    per-video cost the cascade's speed-up is estimated from."""

    seconds: float = 0.0
    videos: int = 0

    @property
    def per_video(self) -> float | None:
        return self.seconds / self.videos if self.videos else None


@dataclass
class PassRecord:
    settings: dict
    videos: dict[str, Measured] = field(default_factory=dict)
    # videos the pass could not judge, with why: not detected again (--restart does)
    failed: dict[str, str] = field(default_factory=dict)
    timing: PassTiming = field(default_factory=PassTiming)

    def done(self, videos: Sequence[str]) -> bool:
        """Whether a sample with these videos needs nothing more from this
        pass: all measured, or one failed (the sample cannot be judged)."""
        return any(v in self.failed for v in videos) or all(v in self.videos for v in videos)

    @classmethod
    def from_json(cls, data: dict) -> PassRecord:
        return cls(data["settings"], {k: Measured(**v) for k, v in data["videos"].items()}, dict(data["failed"]),
                   PassTiming(**data["timing"]))


@dataclass
class Merged:
    """What merging a pass's run added."""

    measured: int = 0
    failed: int = 0


def _changes(old: dict, new: dict) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class SavedPasses:
    """``passes.json`` in a calibration's work folder."""

    def __init__(self, work: Path, passes: dict[str, PassRecord]):
        self.work = Path(work)
        self.passes = passes

    @property
    def path(self) -> Path:
        return self.work / "passes.json"

    def __getitem__(self, name: str) -> PassRecord:
        return self.passes[name]

    @classmethod
    def open(cls, work: Path, settings: dict[str, dict], restart: bool = False) -> SavedPasses:
        """The saved passes, checked against ``settings``; new ones when there
        are none or ``restart``. A pass's run folder is only ever read back
        under the settings it ran with: starting afresh removes them."""
        work = Path(work)
        path = work / "passes.json"
        if path.exists() and not restart:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("format") != FORMAT:
                    raise ValueError(f"format {data.get('format')!r}, not {FORMAT}")
                passes = {name: PassRecord.from_json(data["passes"][name]) for name in PASSES}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path}: the saved calibration passes cannot be read ({exc}); pass --restart to "
                                  "measure them again") from None
            changed = [f"{name} pass: {c}" for name in PASSES for c in _changes(passes[name].settings, settings[name])]
            if changed:
                raise ConfigError(
                    f"{path} holds calibration passes measured with other detector settings ({'; '.join(changed)}); "
                    "measurements under other settings are not mixed. Pass --restart to discard them and detect "
                    "again with these settings, go back to the earlier settings, or calibrate into another --export")
            return cls(work, passes)
        work.mkdir(parents=True, exist_ok=True)
        for name in PASSES:
            # what an earlier calibration (or an older textsieve) left under settings no longer known
            shutil.rmtree(run_folder(work, name), ignore_errors=True)
            sample_file(work, name).unlink(missing_ok=True)
        saved = cls(work, {name: PassRecord(settings[name]) for name in PASSES})
        saved.save()
        return saved

    def save(self) -> None:
        data = {"format": FORMAT, "passes": {name: asdict(record) for name, record in self.passes.items()}}
        write_atomic(self.path, dumps(data) + "\n")

    def merge_run(self, name: str, samples: Sequence[Sequence[str]]) -> Merged:
        """Add what the pass's run folder holds, finished or stopped, to the
        record (not saved: the caller saves once). ``samples``: the videos of
        each row of that run's dataset, by row index."""
        record, merged = self.passes[name], Merged()
        folder = run_folder(self.work, name)
        if not folder.exists():
            return merged
        for stats in iter_records(folder, folder / "kept.jsonl", "stats"):
            for video in stats["videos"]:
                if video["video"] not in record.videos:
                    record.videos[video["video"]] = Measured(video["frame_times"], video["frame_ratios"])
                    record.failed.pop(video["video"], None)
                    merged.measured += 1
        for error in iter_records(folder, folder / "kept.jsonl", "errors"):
            index = error.get("index")
            videos = [error["video"]] if error.get("video") else \
                list(samples[index]) if isinstance(index, int) and 0 <= index < len(samples) else []
            for video in videos:
                if video not in record.videos and video not in record.failed:
                    record.failed[video] = f"{error.get('kind')}: {error.get('message')}"
                    merged.failed += 1
        return merged

    def salvage(self, video_key: str) -> Merged:
        """Merge what a session stopped before its merge (killed) left in the
        passes' run folders; saves when that added anything."""
        total = Merged()
        for name in PASSES:
            path = sample_file(self.work, name)
            if not path.exists():
                continue
            samples = [[mask_url(v) for v in row.get(video_key) or []] for row in read_jsonl(path)]
            got = self.merge_run(name, samples)
            total.measured += got.measured
            total.failed += got.failed
        if total.measured or total.failed:
            self.save()
        return total

    def videos_measured_by_both(self, videos: Iterable[str]) -> list[str]:
        fast, reference = self.passes[FAST].videos, self.passes[REFERENCE].videos
        return [v for v in videos if v in fast and v in reference]


def run_folder(work: Path, name: str) -> Path:
    """The export folder of a pass's latest run."""
    return Path(work) / name


def sample_file(work: Path, name: str) -> Path:
    """The dataset of a pass's latest run: the drawn samples it still lacked."""
    return Path(work) / f"sample-{name}.jsonl"
