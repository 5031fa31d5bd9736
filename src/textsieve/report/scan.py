"""One pass over an export folder for ``textsieve report``.

A million stats rows must fit in seconds and in little memory, so the pass
keeps numbers only (per-video ratios, one what-if key per sample) in compact
arrays, counters, and a bounded set of gallery candidates (a few heaps and a
reservoir); no record is held beyond its line.
"""

from __future__ import annotations

import heapq
import math
import random
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from ..data.export import iter_records, part_of
from ..data.journal import JOURNAL, read_settings
from ..data.shards import MANIFEST, read_manifest
from ..errors import ConfigError
from ..judging import in_range, kinds_within
from ..kind_rules import KINDS
from .summary import RunSummary

EXAMPLES_PER_KIND = 3


@dataclass(frozen=True)
class Candidate:
    """One video of one judged sample, as the gallery shows it."""

    index: int
    status: str
    video: dict  # the stats record's entry: video, ratio, frame_times, frame_ratios, frame_boxes, width, height


@dataclass(frozen=True)
class Thresholds:
    min_ratio: float
    max_ratio: float
    any_or_all: str
    reversed_range: bool = False  # Data-Juicer's: keep the videos outside [min, max]


@dataclass(frozen=True)
class KindScan:
    """The kinds of text of a run that judged them (docs/kinds.md)."""

    limits: dict[str, float]  # the per-kind maxima the run set (max_overlay_ratio: "overlay")
    count_kinds: list[str] | None  # the kinds the main ratio counts; None: all text
    # per kind, each judged video's ratio of that kind (once per sample it is
    # in, as ``Scan.video_ratios``), on the deciding detector's own scale
    ratios: dict[str, np.ndarray]
    main: Counter[tuple[str, str]]  # (main kind, its sample's status) -> videos


@dataclass
class Scan:
    """What the report shows, from one pass over the folder."""

    export_dir: Path
    finished: bool  # summary.json written and no part files left: the run completed
    summary: RunSummary | None
    op: dict  # the filter's settings: thresholds, detector, max_side, ...
    thresholds: Thresholds
    video_ratios: np.ndarray  # every judged video's ratio (once per sample it is in)
    # per judged sample (sorted), the smallest max_area_ratio that keeps it
    # at the recipe's min and any/all (-inf: no videos, always kept; inf: never)
    keep_keys: np.ndarray
    status: Counter[str] = field(default_factory=Counter)  # kept / dropped among the stats records
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, list[dict]] = field(default_factory=dict)
    decided_by: Counter[str] = field(default_factory=Counter)  # cascade: which detector decided each video
    routed: Counter[str] = field(default_factory=Counter)  # cascade: why CRAFT re-judged
    outside_calibration: int = 0
    no_video_samples: int = 0
    groups: dict[str, list[Candidate]] = field(default_factory=dict)
    kinds: KindScan | None = None  # a run that judged the kinds of text (docs/kinds.md); else None

    @property
    def judged(self) -> int:
        return len(self.keep_keys)

    def kept_at(self, max_ratios: np.ndarray) -> np.ndarray:
        """Samples kept at each max_area_ratio, at the recipe's min, any/all
        and reversed_range: the rule of :func:`textsieve.judging.keep_sample`."""
        inside = np.searchsorted(self.keep_keys, max_ratios, side="right")
        if not self.thresholds.reversed_range:
            return inside
        # reversed, a sample with videos is kept when it is not "inside" under the
        # other aggregate (keep_keys are computed so); one without videos always is
        return self.judged - inside + self.no_video_samples


class _Best:
    """The ``k`` videos with the largest score, each path at most once;
    equal scores keep the earlier row, so a report is reproducible."""

    def __init__(self, k: int):
        self.k = k
        self.heap: list[tuple[float, int, str, Candidate]] = []
        self.paths: set[str] = set()
        # a score at or below this cannot enter (k = 0: nothing can)
        self.floor = -math.inf if k else math.inf

    def offer(self, score: float, seq: int, candidate: Candidate) -> None:
        path = candidate.video["video"]
        if path in self.paths:
            return
        entry = (score, -seq, path, candidate)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, entry)
        else:
            self.paths.discard(heapq.heapreplace(self.heap, entry)[2])
        self.paths.add(path)
        if len(self.heap) == self.k:
            self.floor = self.heap[0][0]

    def items(self) -> list[Candidate]:
        return [entry[3] for entry in sorted(self.heap, reverse=True)]


class _Reservoir:
    """A uniform random sample of ``k`` items from a stream of unknown
    length (Li's algorithm L: random numbers only at the items it takes)."""

    def __init__(self, k: int, seed: int):
        self.k, self.rng = k, random.Random(seed)
        self.items: list[Candidate | None] = []
        self.seen = 0
        self.w = math.exp(math.log(self.rng.random()) / k) if k else 0.0
        self.next = k + self._skip() if k else math.inf

    def _skip(self) -> int:
        return int(math.log(self.rng.random()) / math.log(1 - self.w)) if self.w < 1 else 0

    def slot(self) -> int:
        """Where the stream's next item goes in ``items``; -1: not taken."""
        i = self.seen
        self.seen += 1
        if i < self.k:
            self.items.append(None)
            return i
        if i != self.next:
            return -1
        self.w *= math.exp(math.log(self.rng.random()) / self.k)
        self.next += self._skip() + 1
        return self.rng.randrange(self.k)


def export_folder(path: Path) -> Path:
    """The export folder for ``path``: the folder itself, or the folder of a
    ``.jsonl`` export_path (Data-Juicer's form)."""
    path = Path(path)
    return path.parent if path.suffix == ".jsonl" and not path.is_dir() else path


def _settings(export_dir: Path) -> tuple[bool, RunSummary | None, dict, Path]:
    """(finished, summary, filter settings, kept file) of the folder's run."""
    summary_path = export_dir / "summary.json"
    summary = RunSummary.load(summary_path) if summary_path.exists() else None
    sharded = (export_dir / MANIFEST).exists()
    # a finished run removes its part files (sharded: marks its manifest
    # complete); one resumed with --retry-errors has an older summary and is
    # running again
    finished = summary is not None and (read_manifest(export_dir)[2] if sharded
                                        else not part_of(export_dir / "stats.jsonl").exists())
    if finished:
        export_path = Path(summary.config["export_path"])
        kept = export_path if export_path.suffix == ".jsonl" else export_dir / "kept.jsonl"
        return True, summary, summary.op, kept
    if sharded:
        settings = read_manifest(export_dir)[0]["settings"]
    elif (export_dir / JOURNAL).exists():
        settings = read_settings(export_dir)
    else:
        raise ConfigError(
            f"{export_dir}: no summary.json, {JOURNAL} or {MANIFEST}: not a textsieve export folder "
            "(give the folder `textsieve run --export` wrote)"
        )
    # the journal names the kept file by its name (older ones: absolute): it lies in this folder
    return False, summary, settings["filter"], export_dir / Path(settings.get("kept_file") or "kept.jsonl").name


class _Gallery:
    """The report's example videos, chosen in one pass: the best few of
    each group by their distance to a threshold, and a uniform sample."""

    def __init__(self, per_group: int, lo: float, hi: float, seed: int):
        self.lo, self.hi = lo, hi
        self.inside_max, self.outside_max, self.highest = _Best(per_group), _Best(per_group), _Best(per_group)
        # with min 0 nothing lies below min: those groups stay empty
        self.inside_min, self.outside_min = _Best(per_group if lo > 0 else 0), _Best(per_group if lo > 0 else 0)
        self.reservoir = _Reservoir(per_group, seed)
        self.seq = 0

    def offer(self, index: int, status: str, video: dict) -> None:
        r, lo, hi = video["ratio"], self.lo, self.hi
        self.seq += 1
        wanted = []  # (group, score) of the groups this video would enter
        if r > self.highest.floor:
            wanted.append((self.highest, r))
        if in_range(r, lo, hi):
            if r > self.inside_max.floor:
                wanted.append((self.inside_max, r))
            if -r > self.inside_min.floor:
                wanted.append((self.inside_min, -r))
        elif r > hi:
            if -r > self.outside_max.floor:
                wanted.append((self.outside_max, -r))
        elif r > self.outside_min.floor:
            wanted.append((self.outside_min, r))
        slot = self.reservoir.slot()
        if wanted or slot >= 0:  # most videos enter no group: build nothing for them
            item = Candidate(index, status, video)
            for group, score in wanted:
                group.offer(score, self.seq, item)
            if slot >= 0:
                self.reservoir.items[slot] = item

    def groups(self) -> dict[str, list[Candidate]]:
        return {
            "inside_max": self.inside_max.items(),
            "outside_max": self.outside_max.items(),
            "inside_min": self.inside_min.items(),
            "outside_min": self.outside_min.items(),
            "highest": self.highest.items(),
            "random": _unique([c for c in self.reservoir.items if c is not None]),
        }


class _KindTally:
    """The kinds' numbers, gathered in the stats pass: per kind a compact
    array of ratios, and the videos per main kind and status."""

    def __init__(self, op: dict):
        self.limits = {kind: float(op[key]) for kind in KINDS
                       if op.get(key := f"max_{kind}_ratio") is not None}
        self.count_kinds = op.get("count_kinds")
        self.ratios = {kind: array("d") for kind in KINDS}
        self.main: Counter[tuple[str, str]] = Counter()

    def offer(self, status: str, video: dict) -> None:
        kind_ratios = video.get("kind_ratios")
        if kind_ratios is None:  # a row written without kinds (none is, in a run that judges them)
            return
        for kind in KINDS:
            self.ratios[kind].append(kind_ratios[kind])
        self.main[video["main_kind"], status] += 1

    def failing(self, record: dict) -> list[bool] | None:
        """Per entry of the sample's ratios, whether its video is past a
        kind's maximum (and so fails whatever its ratio); None: none is."""
        if not self.limits:
            return None
        videos, entries = record["videos"], record.get("entry_videos") or range(len(record["videos"]))
        failing = [not kinds_within(videos[i].get("kind_ratios"), self.limits) for i in entries]
        return failing if any(failing) else None

    def result(self) -> KindScan:
        return KindScan(self.limits, self.count_kinds,
                        {k: np.frombuffer(v, dtype=np.float64) if v else np.zeros(0) for k, v in self.ratios.items()},
                        self.main)


def judges_kinds(op: dict) -> bool:
    """Whether the run's filter settings judge the kinds of text (a kind key
    is set: ``OcrFilter.kinds``); runs from before kinds existed have none."""
    return any(op.get(f"max_{kind}_ratio") is not None for kind in KINDS) or any(
        op.get(key) is not None for key in ("count_kinds", "kind_frames"))


def _keep_key(sample: list[float], lo: float, use_all: bool, failing: list[bool] | None = None,
              reversed_range: bool = False) -> float:
    """The ratio at which a sample's decision flips (see ``Scan.keep_keys``).
    ``failing``: per entry, whether its video is past a kind's maximum; such a
    video is never kept, so it is never "inside" and, reversed (where keys
    count the samples not kept), always is."""
    if not sample:
        return -math.inf
    if failing is not None:
        if reversed_range != use_all:  # one failing video settles it: inside (reversed) or never (not)
            return -math.inf if reversed_range else math.inf
        # else the failing videos take no part in the test
        sample = [r for r, fails in zip(sample, failing) if not fails]
        if not sample:
            return -math.inf if reversed_range else math.inf
    if use_all:
        return max(sample) if min(sample) >= lo else math.inf
    return min((r for r in sample if r >= lo), default=math.inf)


def _scan_errors(export_dir: Path, kept_file: Path) -> tuple[Counter[str], dict[str, list[dict]]]:
    errors: Counter[str] = Counter()
    examples: dict[str, list[dict]] = {}
    for record in iter_records(export_dir, kept_file, "errors"):
        kind = record.get("kind", "?")
        errors[kind] += 1
        shown = examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_PER_KIND:
            shown.append({k: record.get(k) for k in ("index", "video", "message")})
    return errors, examples


def scan_export(export_dir: Path, per_group: int = 8, seed: int = 0) -> Scan:
    """Read a finished or running export folder's stats and errors once."""
    if per_group < 0:
        raise ConfigError(f"the gallery's videos per group must be 0 or more, not {per_group}")
    export_dir = export_folder(export_dir)
    if not export_dir.is_dir():
        raise ConfigError(f"{export_dir}: no such folder (give the export folder of a `textsieve run`)")
    finished, summary, op, kept_file = _settings(export_dir)
    th = Thresholds(float(op["min_area_ratio"]), float(op["max_area_ratio"]), op["any_or_all"],
                    bool(op.get("reversed_range", False)))
    # keys say when a sample is "inside" [min, max]; reversed, "any outside" is
    # "not all inside" (and "all outside" is "not any inside")
    use_all = (th.any_or_all == "all") != th.reversed_range

    ratios, keys = array("d"), array("d")
    status: Counter[str] = Counter()
    decided_by: Counter[str] = Counter()
    routed: Counter[str] = Counter()
    outside = no_videos = 0
    gallery = _Gallery(per_group, th.min_ratio, th.max_ratio, seed)
    kinds = _KindTally(op) if judges_kinds(op) else None
    for record in iter_records(export_dir, kept_file, "stats"):
        status[record["status"]] += 1
        sample = record["video_ocr_area_ratio"]
        failing = kinds.failing(record) if kinds is not None else None
        keys.append(_keep_key(sample, th.min_ratio, use_all, failing, th.reversed_range))
        no_videos += not sample
        for video in record["videos"]:
            ratios.append(video["ratio"])
            if "decided_by" in video:
                decided_by[video["decided_by"]] += 1
                if "routed" in video:
                    routed[video["routed"]] += 1
            outside += bool(video.get("outside_calibration"))
            gallery.offer(record["index"], record["status"], video)
            if kinds is not None:
                kinds.offer(record["status"], video)
    errors, examples = _scan_errors(export_dir, kept_file)
    return Scan(
        export_dir=export_dir,
        finished=finished,
        summary=summary,
        op=op,
        thresholds=th,
        video_ratios=np.frombuffer(ratios, dtype=np.float64) if ratios else np.zeros(0),
        keep_keys=np.sort(np.frombuffer(keys, dtype=np.float64)) if keys else np.zeros(0),
        status=status,
        errors_by_kind=errors,
        error_examples=examples,
        decided_by=decided_by,
        routed=routed,
        outside_calibration=outside,
        no_video_samples=no_videos,
        groups=gallery.groups(),
        kinds=kinds.result() if kinds is not None else None,
    )


def _unique(items: list[Candidate]) -> list[Candidate]:
    # a video in several samples may be drawn twice; show it once
    seen: set[str] = set()
    return [c for c in items if not (c.video["video"] in seen or seen.add(c.video["video"]))]
