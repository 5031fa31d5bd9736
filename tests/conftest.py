from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from textsieve.synthetic import VideoSpec, write_video


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def make_video(video_dir):
    """Encode a VideoSpec once per session and return its path."""
    cache: dict[VideoSpec, Path] = {}

    def make(spec: VideoSpec, name: str | None = None) -> Path:
        if spec not in cache:
            stem = name or hashlib.sha1(repr(spec).encode()).hexdigest()[:12]
            cache[spec] = write_video(video_dir / f"{stem}.{spec.container}", spec)
        return cache[spec]

    return make
