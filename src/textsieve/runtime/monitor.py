"""Watching a run: GPU memory on every device, host memory, and progress.

The GPU query is injectable (NVML by default), so a test can feed a
simulated device that fills up and check the peak and the reserve warning.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable

import psutil

from ..resources.inventory import GiB

log = logging.getLogger(__name__)

GpuQuery = Callable[[], list[dict]]  # [{"index", "name", "total", "free"}]


def nvml_query() -> list[dict]:
    from ..resources.inventory import gpu_inventory

    gpus, _, _ = gpu_inventory(use_torch=False)  # never create a CUDA context here
    return [{"index": g.index, "name": g.name, "total": g.total, "free": g.free} for g in gpus]


class ResourceMonitor:
    """Samples every GPU and the host's RSS (this process and its children)
    in a background thread; keeps peaks and reserve breaches."""

    def __init__(self, query: GpuQuery | None, reserves: dict[int, int], interval_s: float = 1.0):
        self.query = query
        self.reserves = reserves
        self.interval_s = interval_s
        self.peak_used: dict[int, int] = {}
        self.latest: dict[int, dict] = {}
        self.breaches: dict[int, int] = {}  # device -> lowest free seen below its reserve
        self.peak_host_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="textsieve-monitor", daemon=True)

    def start(self) -> "ResourceMonitor":
        self.sample()
        self._thread.start()
        return self

    def sample(self) -> None:
        if self.query is not None:
            try:
                for g in self.query():
                    i = g["index"]
                    self.latest[i] = g
                    self.peak_used[i] = max(self.peak_used.get(i, 0), g["total"] - g["free"])
                    reserve = self.reserves.get(i)
                    if reserve is not None and g["free"] < reserve:
                        self.breaches[i] = min(self.breaches.get(i, g["free"]), g["free"])
            except Exception as exc:  # monitoring must never stop a run
                log.debug("GPU query failed: %s", exc)
                self.query = None
        try:
            me = psutil.Process()
            rss = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    rss += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_host_rss = max(self.peak_host_rss, rss)
        except psutil.Error:
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.sample()

    def gpu_line(self) -> str:
        return " ".join(
            f"gpu{i} {(g['total'] - g['free']) / GiB:.1f}/{g['total'] / GiB:.0f}G" for i, g in sorted(self.latest.items())
        )

    def report(self) -> dict:
        out = {
            "peak_host_rss_bytes": self.peak_host_rss,
            "gpus": {
                str(i): {
                    "name": self.latest.get(i, {}).get("name"),
                    "peak_used_bytes": used,
                    "total_bytes": self.latest.get(i, {}).get("total"),
                    "came_within_reserve": i in self.breaches,
                }
                for i, used in sorted(self.peak_used.items())
            },
        }
        for i, free in sorted(self.breaches.items()):
            log.warning("GPU %d came within its reserve: %.2f GiB free at worst (reserve %.2f GiB)",
                        i, free / GiB, self.reserves[i] / GiB)
        return out


class Progress:
    """A live bar on a terminal; a log line every ``interval_s`` otherwise."""

    def __init__(self, total: int | None, already_done: int, monitor: ResourceMonitor, interval_s: float = 10.0):
        self.total, self.done, self.monitor = total, already_done, monitor
        self.counts = {"kept": 0, "dropped": 0, "error": 0}
        self.videos = 0
        self.started = time.monotonic()
        self.start_done = already_done
        self.interval_s = interval_s
        self._last = 0.0
        self._bar = None
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self._task = self._bar.add_task("samples", total=total, completed=already_done, info="")
            self._bar.start()

    def update(self, status: str, videos: int) -> None:
        self.done += 1
        self.counts[status] += 1
        self.videos += videos
        now = time.monotonic()
        if self._bar is not None:
            if now - self._last > 0.2:
                self._last = now
                self._bar.update(self._task, completed=self.done, info=self._info(now))
        elif now - self._last > self.interval_s:
            self._last = now
            log.info("%s/%s samples; %s", self.done, self.total or "?", self._info(now))

    def _info(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.videos / elapsed
        left = "" if not self.total else f" ETA {max(0, self.total - self.done) / max((self.done - self.start_done) / elapsed, 1e-9):.0f}s"
        c = self.counts
        return f"{rate:.2f} videos/s, kept {c['kept']} dropped {c['dropped']} errors {c['error']}{left} {self.monitor.gpu_line()}".rstrip()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, info=self._info(time.monotonic()))
            self._bar.stop()
