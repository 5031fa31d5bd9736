from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import pytest

from textsieve.synthetic import TextBlock, VideoSpec, write_video

TINY = dict(width=160, height=120, frames=10, gop=5, fps=Fraction(10))


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


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """Nine samples: four tiny videos (three with text), a sample holding two
    of them (one twice), and the bad ones: a missing file, an empty one, a
    text file, and a sample without videos. Sample ids are their indices."""
    d = tmp_path_factory.mktemp("small")
    for i, text in enumerate(["Hello world", "", "Caption", "BIG"]):
        blocks = (TextBlock(text, 8, 50, size=20 + 4 * i),) if text else ()
        write_video(d / f"v{i}.mp4", VideoSpec(**TINY, blocks=blocks))
    (d / "zero.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("not a video\n" * 20)
    rows = [{"id": i, "videos": [f"v{i}.mp4"]} for i in range(4)] + [
        {"id": 4, "videos": ["v0.mp4", "v1.mp4", "v0.mp4"]},
        {"id": 5, "videos": ["nope.mp4"]},
        {"id": 6, "videos": []},
        {"id": 7, "videos": ["zero.mp4"]},
        {"id": 8, "videos": ["notes.mp4"]},
    ]
    path = d / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pytest_configure(config):
    """Each pytest process (each xdist worker) keeps its Ray instances to itself. A command
    without --address joins the instance that the machine's last `ray start` recorded in
    Ray's temporary folder (the 3-node cluster of test_cluster records itself there): a
    test's laptop run, in a subprocess, would join the other worker's cluster instead of
    starting its own. Ray's sockets live in this folder: its path stays short."""
    folder = tempfile.mkdtemp(prefix="tsray-", dir="/tmp")
    config.stash[RAY_TMPDIR] = (os.environ.get("RAY_TMPDIR"), folder)
    os.environ["RAY_TMPDIR"] = folder


def pytest_unconfigure(config):
    before, folder = config.stash[RAY_TMPDIR]
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()  # its processes write in the folder until then
    shutil.rmtree(folder, ignore_errors=True)
    if before is None:
        os.environ.pop("RAY_TMPDIR", None)
    else:
        os.environ["RAY_TMPDIR"] = before


RAY_TMPDIR = pytest.StashKey[tuple]()


# One local Ray instance for every test that runs Ray in this process: starting one takes
# seconds on 2 cores, and a second ray.init in the same process fails. It declares 2 GPUs so
# that placement can be tested; none exists, so a plan from a node's real inventory still
# runs its replicas on the CPU unless a test simulates GPUs.
RAY_LOCAL = dict(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}})


@pytest.fixture
def ray_local():
    """Ray joined to the session's local instance, started on first use (again after a test
    module that needed a cluster of its own shut it down)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(**RAY_LOCAL)
    return ray


@pytest.fixture
def ray_env(ray_local) -> dict[str, str]:
    """The environment for a CLI subprocess that joins the session's Ray instance, as a
    user's command joins a running cluster (RAY_ADDRESS): starting a Ray instance of its
    own costs each such run 5-15 s on 2 cores. Tests of the start itself do not use it."""
    return {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}



# Modules whose tests are whole runs (subprocesses, worker processes, kills, servers): 10-60 s
# each on 2 cores (`pytest --durations=80`, December 2026). The rest test pure code and single
# steps, and make the developer's loop: pytest -m "not slow".
SLOW_MODULES = {"test_archives", "test_cluster", "test_conformance", "test_failures", "test_http", "test_local",
                "test_ownership", "test_ray", "test_remote", "test_shard_size", "test_shm", "test_user_errors",
                "test_bad_rows", "test_run", "test_pieces", "test_cascade", "test_fast", "test_report", "test_kinds_run"}


# The groups that take longest (`pytest -n 2 --dist loadgroup --durations=0`, 7 December 2026:
# Ray 483 s, the 3-node cluster 143 s, the conformance matrix 75 s, the rest under 52 s each)
LONGEST_GROUPS = ["ray", "test_cluster", "test_conformance"]
GROUP = pytest.StashKey[str]()


def group_of(item: pytest.Item) -> str:
    return item.stash[GROUP]


# tryfirst: pytest-xdist reads the xdist_group markers in its own hook of this name (it
# appends "@group" to each node id): these markers must be set before it runs
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Markers a test earns by what it runs, so that none is forgotten: Ray
    (its fixture, a Ray module, or a Ray executor parameter), the browser and
    whole runs are slow on 2 cores."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        uses_ray = ("ray_local" in item.fixturenames or item.module.__name__ in ("test_ray", "test_cluster")
                    or params.get("executor") == "ray"
                    # test_schemas' module fixture makes a Ray run in the session's instance: with the
                    # Ray group, or the other worker starts an instance of its own for it
                    or (item.module.__name__ == "test_schemas" and "runs" in item.fixturenames))
        if uses_ray:
            item.add_marker(pytest.mark.ray)
        # pytest-xdist (README: -n 2 --dist loadgroup): a module to one worker, so that its
        # module fixtures run once; every test of the session's Ray instance (ray_local, which
        # lives in a worker's process) to the same worker. test_cluster's 3-node cluster is a
        # group of its own, so that it can run beside them on the other worker.
        group = "ray" if uses_ray and item.module.__name__ != "test_cluster" else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))
        item.stash[GROUP] = group
        if "chromium" in item.fixturenames:
            item.add_marker(pytest.mark.browser)
        if (uses_ray or "chromium" in item.fixturenames or item.get_closest_marker("gpu")
                or item.module.__name__ in SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
    # pytest-xdist deals the groups out in the order collected, each to the next free worker: the
    # longest first (largest first is near-even on two workers), the Ray group above all (about
    # 480 s on 2 cores; last in line, it ran alone at the end while the other worker idled)
    items.sort(key=lambda item: LONGEST_GROUPS.index(group_of(item)) if group_of(item) in LONGEST_GROUPS
               else len(LONGEST_GROUPS))


def pytest_collection_finish(session):
    """Refuse to run an xdist worker whose groups were dropped: pytest 9.2 names tests by a
    structured id that pytest-xdist 3.8 cannot append its "@group" to, and then every test is
    dealt out alone (pytest-dev/pytest-xdist#1386), with no error: module fixtures set up on
    both workers, two Ray instances side by side, the suite far slower. requirements/pins.in
    holds pytest below 9.2 for this."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(f"pytest-xdist's --dist loadgroup ignored the xdist_group of {len(lost)} tests "
                                f"(first: {lost[0]}): install the locked pytest (requirements/pins.in)")
