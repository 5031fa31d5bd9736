"""Which frames of a video are judged: pure functions, no decoding.

The rules reproduce Data-Juicer's ``extract_video_frames_uniformly`` exactly
(see docs/semantics.md), including two of its less obvious behaviours:

* inside one keyframe interval a decoded frame serves at most one target, so
  two targets between the same pair of frames get consecutive frames rather
  than the same one; each interval is searched on its own from its keyframe
  (compared as a float, as Data-Juicer keeps keyframe times), so intervals
  may pick the same frame;
* an interval whose targets lie past the last frame gets the last frame once.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Any, Sequence


def effective_frame_count(requested: int, stream_frames: int | None) -> int:
    """How many frames to sample: Data-Juicer caps the request at the
    container's frame count. An unknown count (0 or None, as Matroska and
    WebM report it) does not cap: Data-Juicer would sample nothing there and
    report NaN, which no threshold can use."""
    if requested < 1:
        raise ValueError(f"frame_sample_num must be >= 1, got {requested}")
    if stream_frames and stream_frames < requested:
        return stream_frames
    return requested


def uniform_targets(duration: Fraction, n: int) -> list[Fraction]:
    """Target times in seconds: the middle for n=1, else n points evenly from
    0 to ``duration`` inclusive. Exact rationals, as Data-Juicer's arithmetic
    on PyAV's ``Fraction`` time bases is exact."""
    if n < 1:
        return []
    if n == 1:
        return [duration / 2]
    step = duration / (n - 1)
    return [step * i for i in range(n)]


def interval_targets(duration: Fraction, every_s: Fraction, max_frames: int) -> list[Fraction]:
    """Opt-in sampling for long videos: one target every ``every_s`` seconds
    from 0, at most ``max_frames`` of them, spread over the whole video when
    the cap binds."""
    if every_s <= 0 or max_frames < 1:
        raise ValueError("interval sampling needs every_s > 0 and max_frames >= 1")
    count = int(duration // every_s) + 1
    if count <= max_frames:
        return [every_s * i for i in range(count)]
    return uniform_targets(duration, max_frames)


class TargetMatcher:
    """Feed decoded frames in presentation order with :meth:`offer`, then
    :meth:`finish` with the last frame; :meth:`picked` returns the chosen
    items in Data-Juicer's order. Targets must be sorted ascending.

    Data-Juicer searches each keyframe interval ("group") separately from its
    keyframe, so a group whose targets outnumber its frames reads on past the
    next keyframe, and the next group reads those frames again. Each group is
    therefore its own cursor here, all fed from one forward decode.
    """

    def __init__(self, targets: Sequence[Fraction]):
        self.targets = list(targets)
        # one group per keyframe interval: [start (float seconds), pending target indices, picks]
        self._groups: list[tuple[float, deque[int], list[Any]]] = [(0.0, deque(range(len(self.targets))), [])]

    @property
    def done(self) -> bool:
        return all(not pending for _, pending, _ in self._groups)

    @property
    def pending(self) -> Fraction | None:
        """The earliest target still waiting for a frame."""
        firsts = [self.targets[p[0]] for _, p, _ in self._groups if p]
        return min(firsts) if firsts else None

    def offer(self, time: Fraction, is_key: bool, item: Any) -> None:
        if is_key and float(time) > self._groups[-1][0]:
            # Data-Juicer keeps keyframe times as floats: the boundary is the float.
            start = float(time)
            pending = self._groups[-1][1]
            moved: deque[int] = deque()
            while pending and self.targets[pending[-1]] >= start:
                moved.appendleft(pending.pop())
            self._groups.append((start, moved, []))
        for _, pending, picks in self._groups:
            # within a group a frame serves at most one target
            if pending and time >= self.targets[pending[0]]:
                pending.popleft()
                picks.append(item)

    def finish(self, last_item: Any) -> None:
        """End of stream: every group still waiting takes the last frame once."""
        for _, pending, picks in self._groups:
            if pending:
                pending.clear()
                picks.append(last_item)

    def picked(self) -> list[Any]:
        return [item for _, _, picks in self._groups for item in picks]


def select_from_sequence(
    frames: Sequence[tuple[Fraction, bool]], targets: Sequence[Fraction]
) -> list[int]:
    """Reference selection over a fully decoded frame list of (time, is_key):
    the indices of the chosen frames, in order. The seeking extractor must
    produce exactly these (a test checks it)."""
    matcher = TargetMatcher(targets)
    for i, (time, key) in enumerate(frames):
        if matcher.done:
            break
        matcher.offer(time, key, i)
    else:
        if frames:
            matcher.finish(len(frames) - 1)
    return matcher.picked()
