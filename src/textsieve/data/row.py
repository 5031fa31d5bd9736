"""A dataset row as every reader yields it: its 0-based index (the sample's
identity in every output and in the journal), the parsed sample, or the
row's own defect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    index: int
    sample: Any  # the parsed row; a dict unless ``error`` is set
    error: str | None = None
