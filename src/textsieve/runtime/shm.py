"""Frames in shared memory: decoders write them once, replicas read them in
place, and only small handles cross the pipes.

A pickled 1080p frame crosses a ``multiprocessing`` pipe at 47-66 frames/s
on this machine, and the supervisor used to pickle every frame twice in
its single thread (decoder -> supervisor -> replica): a ceiling no GPU can
lift. Now the supervisor owns one shared-memory segment cut into fixed
slots of the largest planned frame. It hands a decoder free slots with each
task, the decoder writes the frames there (smaller frames packed several to
a slot: a 1080p slot holds nine 360p frames), the supervisor passes their
handles on to a replica, and frees a slot when the replica is done with
every frame in it (the :class:`~textsieve.runtime.flow.SampleAssembly` calls
``release``). Memory is the segment's size, fixed: the byte budget of the
frame buffer, and decoding waits when no slot is free. A frame larger than a
slot (a video above ``plan_frame_size``), or past the slots a task was
given, crosses the pipe pickled, as before.

No segment outlives its run: the supervisor unlinks it when it ends, its
resource tracker does if it dies, and every run first removes the segments
of runs whose process is gone (a whole process group killed at once takes
the tracker with it).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any, Sequence

import numpy as np
import psutil

log = logging.getLogger(__name__)

PREFIX = "textsieve-"
SHM_DIR = "/dev/shm"


ALIGN = 64  # frames packed in a slot start on cache-line boundaries


@dataclass(frozen=True)
class SharedFrame:
    """A frame in a slot of the pool: what crosses the pipes instead of pixels."""

    slot: int
    shape: tuple[int, int, int]
    offset: int = 0  # within the slot (several small frames share one)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))


class FramePool:
    """Fixed-size frame slots in one shared-memory segment. The creator
    (the supervisor) keeps the free list; workers attach by name."""

    def __init__(self, segment: shared_memory.SharedMemory, slots: int, slot_bytes: int, owner: bool):
        self.segment, self.slots, self.slot_bytes, self.owner = segment, slots, slot_bytes, owner
        self.free: list[int] = list(range(slots - 1, -1, -1)) if owner else []
        self.frames_in: dict[int, int] = {}  # the supervisor's count of live frames per held slot

    @property
    def name(self) -> str:
        return self.segment.name

    @classmethod
    def create(cls, slots: int, slot_bytes: int) -> "FramePool":
        sweep_stale()
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        segment = shared_memory.SharedMemory(name=name, create=True, size=max(1, slots * slot_bytes))
        return cls(segment, slots, slot_bytes, owner=True)

    @classmethod
    def attach(cls, name: str, slots: int, slot_bytes: int) -> "FramePool":
        # Workers are started by the creator (forks of its fork server, which
        # hands each of them the creator's resource tracker) and share that tracker:
        # attaching registers the name again there (a no-op), and the tracker
        # unlinks the segment if the creator dies without doing it itself.
        segment = shared_memory.SharedMemory(name=name)
        return cls(segment, slots, slot_bytes, owner=False)

    def ref(self) -> "PoolRef":
        return PoolRef(self.name, self.slots, self.slot_bytes)

    # -- the supervisor's side --
    def acquire(self, count: int) -> list[int] | None:
        """``count`` free slots, or None if there are not that many."""
        if len(self.free) < count:
            return None
        return [self.free.pop() for _ in range(count)]

    def release(self, slots: Sequence[int]) -> None:
        self.free.extend(slots)

    def hold(self, granted: Sequence[int], images: Sequence[Any]) -> None:
        """A decoder wrote ``images`` into some of the ``granted`` slots:
        count the frames each slot now holds and free the slots it left empty."""
        for image in images:
            if isinstance(image, SharedFrame):
                self.frames_in[image.slot] = self.frames_in.get(image.slot, 0) + 1
        self.release([slot for slot in granted if slot not in self.frames_in])

    def drop(self, frame: SharedFrame) -> None:
        """A frame is no longer needed: its slot is free once it holds no other."""
        left = self.frames_in[frame.slot] - 1
        if left:
            self.frames_in[frame.slot] = left
        else:
            del self.frames_in[frame.slot]
            self.free.append(frame.slot)

    # -- the workers' side --
    def put_all(self, slots: Sequence[int], images: Sequence[np.ndarray]) -> list[Any]:
        """The frames packed, in order, into ``slots``; a frame larger than a
        slot, or past the room of the slots given, stays an array (it crosses
        the pipe pickled)."""
        out: list[Any] = []
        slot_index, used = 0, 0
        for image in images:
            size = -(-image.nbytes // ALIGN) * ALIGN
            if image.nbytes > self.slot_bytes:
                out.append(image)
                continue
            if used + image.nbytes > self.slot_bytes:  # the next slot
                slot_index, used = slot_index + 1, 0
            if slot_index >= len(slots):
                out.append(image)
                continue
            frame = SharedFrame(slots[slot_index], tuple(image.shape), used)  # type: ignore[arg-type]
            self.view(frame)[...] = image
            out.append(frame)
            used += size
        return out

    def view(self, frame: SharedFrame) -> np.ndarray:
        """The frame's pixels in place (no copy)."""
        start = frame.slot * self.slot_bytes + frame.offset
        return np.ndarray(frame.shape, dtype=np.uint8, buffer=self.segment.buf, offset=start)

    def resolve(self, image: Any) -> np.ndarray:
        return self.view(image) if isinstance(image, SharedFrame) else image

    def close(self) -> None:
        try:
            self.segment.close()
        except BufferError:  # a view is still alive somewhere in this process; the unlink still frees it
            pass
        if self.owner:
            try:
                self.segment.unlink()
            except FileNotFoundError:
                pass


@dataclass(frozen=True)
class PoolRef:
    """What a worker needs to attach to a pool."""

    name: str
    slots: int
    slot_bytes: int

    def attach(self) -> FramePool:
        return FramePool.attach(self.name, self.slots, self.slot_bytes)


def sweep_stale(directory: str = SHM_DIR) -> list[str]:
    """Unlink the segments of textsieve runs whose process is gone; returns their names."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    if removed:
        log.info("removed %d shared-memory segment(s) left by killed runs", len(removed))
    return removed


def pool_size(budget_bytes: int, slot_bytes: int, needed_slots: int, directory: str = SHM_DIR) -> tuple[int, str]:
    """How many slots to create: the frame budget's worth, at least what one
    video needs, and no more than the shared-memory file system holds (a
    container's /dev/shm is often 64 MiB). 0 means: send frames through the
    pipes. Returns the count and the reason."""
    slots = max(needed_slots, budget_bytes // max(1, slot_bytes))
    try:
        stat = os.statvfs(directory)
        room = stat.f_bavail * stat.f_frsize
    except OSError:
        return 0, f"no {directory}: frames go through the pipes"
    fit = int(room * 0.8) // max(1, slot_bytes)
    if fit < needed_slots:
        return 0, (f"{directory} has {room / 2**20:.0f} MiB free, less than one video's frames: frames go "
                   "through the pipes (enlarge /dev/shm, e.g. docker run --shm-size=2g)")
    if fit < slots:
        return fit, f"{fit} slot(s): {directory} holds no more ({room / 2**20:.0f} MiB free)"
    return slots, f"{slots} slot(s) of {slot_bytes / 2**20:.1f} MiB in shared memory"
