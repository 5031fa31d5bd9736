"""Frames waiting for a detector replica, and how they are batched: one
queue per (model, frame shape), since a batch holds frames of one shape for
one model. Part of the sample flow (runtime/flow.py), apart so that the
batching can be read and tested on its own."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class FrameKey:
    """Where a frame belongs: its sample, its video, the part of the video
    (its piece; 0 for a whole video), its place among the part's frames."""

    sample: int
    path: str
    slot: int
    part: int = 0


@dataclass
class Frame:
    key: FrameKey
    image: Any  # an RGB ndarray, or a handle with .shape and .nbytes that the executor resolves
    model: str  # the detector this frame waits for
    held: bool = False  # at a replica now: released when it comes back, not before

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape)

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes)


class FrameBuffer:
    """The frames waiting for a replica, by (model, shape), with their bytes
    counted (the local executor bounds the frames in flight by them)."""

    def __init__(self) -> None:
        self._queues: dict[tuple, deque[Frame]] = {}
        self._since: dict[tuple, float] = {}  # when each group's oldest partial batch started waiting
        self.bytes = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def push(self, frame: Frame, front: bool = False) -> None:
        """Queue a frame; ``front``: a frame given back (its replica died), first out again."""
        group = (frame.model, frame.shape)
        queue = self._queues.setdefault(group, deque())
        (queue.appendleft if front else queue.append)(frame)
        self._since.setdefault(group, time.monotonic())
        self.bytes += frame.nbytes

    def take(self, sizes: Callable[[str], int], max_wait_s: float = 0.0, flush: bool = False,
             now: float | None = None) -> tuple[str, list[Frame]]:
        """Frames of one model and one shape for a replica, up to
        ``sizes(model)``: the group that fills a batch first, else the one
        waiting longest. A partial batch goes once it has waited
        ``max_wait_s``, or at once with ``flush``. ``("", [])`` when none is due."""
        now = time.monotonic() if now is None else now
        if not self._queues:
            return "", []
        group = max(self._queues, key=lambda g: (len(self._queues[g]) >= sizes(g[0]), now - self._since[g]))
        model, queue = group[0], self._queues[group]
        size = sizes(model)
        if not (len(queue) >= size or flush or now - self._since[group] >= max_wait_s):
            return "", []
        batch: list[Frame] = []
        while queue and len(batch) < size:
            frame = queue.popleft()
            self.bytes -= frame.nbytes
            frame.held = True
            batch.append(frame)
        if queue:
            self._since[group] = now
        else:
            del self._queues[group], self._since[group]
        return model, batch

    def drop(self, sample: int) -> None:
        """Forget a failed sample's waiting frames (the caller releases their images)."""
        for group in list(self._queues):
            keep: deque[Frame] = deque()
            for frame in self._queues[group]:
                if frame.key.sample == sample:
                    self.bytes -= frame.nbytes
                else:
                    keep.append(frame)
            if keep:
                self._queues[group] = keep
            else:
                del self._queues[group], self._since[group]
