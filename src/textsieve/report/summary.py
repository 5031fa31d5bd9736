"""The run summary: counts that add up to the input, timings, throughput."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from ..outcome import SampleOutcome


class SummaryBuilder:
    def __init__(self) -> None:
        self.started = time.time()
        self.status: Counter[str] = Counter()
        self.error_kinds: Counter[str] = Counter()
        self.videos = 0
        self.frames = 0
        self.decoded = 0
        self.timings: Counter[str] = Counter()

    def add(self, outcome: SampleOutcome) -> None:
        self.status[outcome.status] += 1
        if outcome.error:
            self.error_kinds[outcome.error["kind"]] += 1
        self.videos += len(outcome.videos)
        self.frames += sum(len(v.frame_ratios) for v in outcome.videos)
        self.decoded += sum(v.decoded_frames for v in outcome.videos)

    def time(self, stage: str, seconds: float) -> None:
        self.timings[stage] += seconds

    @property
    def processed(self) -> int:
        return sum(self.status.values())

    def build(self, input_count: int, totals: dict[str, int], error_kinds: dict[str, int], **sections: Any) -> dict:
        """``totals`` and ``error_kinds`` count the final outputs (resumed runs
        included); throughput and timings are this session's."""
        wall = time.time() - self.started
        counts = {k: totals.get(k, 0) for k in ("kept", "dropped", "error")}
        return {
            "textsieve_version": __version__,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "counts": {"input": input_count, **counts, "adds_up": sum(counts.values()) == input_count},
            "errors_by_kind": dict(sorted(error_kinds.items())),
            "this_session": {
                "samples": self.processed,
                "videos_judged": self.videos,
                "frames_detected": self.frames,
                "frames_decoded": self.decoded,
                "wall_s": round(wall, 3),
                "samples_per_s": round(self.processed / wall, 4) if wall > 0 else None,
                "videos_per_s": round(self.videos / wall, 4) if wall > 0 else None,
                "timings_s": {k: round(v, 3) for k, v in sorted(self.timings.items())},
            },
            **sections,
        }
