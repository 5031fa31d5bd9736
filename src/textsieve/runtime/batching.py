"""Detector batch control, pure: how many frames go through the network at
once, shrinking on out-of-memory and growing back slowly; and what counts
as out-of-memory, whatever the framework."""

from __future__ import annotations

from dataclasses import dataclass


class SimulatedOOM(RuntimeError):
    """Stands for torch.cuda.OutOfMemoryError where no GPU exists (tests, fault injection)."""

    def __init__(self, message: str = "CUDA out of memory (simulated)"):
        super().__init__(message)


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, SimulatedOOM):
        return True
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    message = str(exc).lower()
    if type(exc).__module__.startswith("onnxruntime"):
        # ONNX Runtime's CUDA provider: its arena at the plan's cap, or cudaMalloc failing
        return "failed to allocate memory" in message or "out of memory" in message
    return isinstance(exc, RuntimeError) and "out of memory" in message


@dataclass
class BatchSizer:
    """Halve on out-of-memory; after ``grow_after`` clean batches, one frame more."""

    maximum: int
    grow_after: int = 8
    current: int = 0
    streak: int = 0

    def __post_init__(self) -> None:
        self.current = self.current or self.maximum

    def on_oom(self) -> None:
        self.current = max(1, self.current // 2)
        self.streak = 0

    def on_success(self) -> None:
        self.streak += 1
        if self.streak >= self.grow_after and self.current < self.maximum:
            self.current += 1
            self.streak = 0
