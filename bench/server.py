"""The service under test: a real `python -m service` process, pinned to its own core, watched.

Reuses devtools/live.py (launch_server, wait_ready) so the benchmark starts the service exactly
as the tests do. Server CPU comes from psutil's cpu_times (and, per thread, from threads(): the
event loop runs on the main thread, inference on the batch workers), RSS from sampling memory_info,
and the mean batch size from the service's own /metrics (vae_batch_size_rows sum / count).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

import httpx
import psutil

from devtools.live import MODELS_DIR, ServerProcess, launch_server, wait_ready

_BATCH_LINE = re.compile(r"^vae_batch_size_rows_(sum|count)\{([^}]*)\}\s+(\S+)$", re.MULTILINE)


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin a process and every thread it has so far (threads started later inherit)."""
    if not cpus:
        return
    try:
        tids = [t.id for t in psutil.Process(pid).threads()]
    except psutil.Error:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def thread_cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """(event-loop thread, all live threads) CPU seconds: uvicorn runs the loop on the main thread,
    whose id is the process id; the rest are batch workers and thread-pool threads."""
    loop = total = 0.0
    try:
        threads = process.threads()
    except psutil.Error:
        return float("nan"), float("nan")
    for thread in threads:
        seconds = thread.user_time + thread.system_time
        total += seconds
        if thread.id == process.pid:
            loop = seconds
    return loop, total


@dataclass
class BatchStats:
    rows: float = 0.0
    batches: float = 0.0

    def __sub__(self, other: BatchStats) -> BatchStats:
        return BatchStats(self.rows - other.rows, self.batches - other.batches)

    def __add__(self, other: BatchStats) -> BatchStats:
        return BatchStats(self.rows + other.rows, self.batches + other.batches)

    @property
    def mean_rows(self) -> float:
        return self.rows / self.batches if self.batches else float("nan")


def batch_stats(metrics_text: str, graph: str) -> BatchStats:
    """Rows and batches so far for one graph (every model), from the /metrics exposition."""
    stats = BatchStats()
    for kind, labels, value in _BATCH_LINE.findall(metrics_text):
        if f'graph="{graph}"' not in labels:
            continue
        if kind == "sum":
            stats.rows += float(value)
        else:
            stats.batches += float(value)
    return stats


class BenchServer:
    """A started, ready service process with the given VAE_* settings, pinned to `cpus`."""

    def __init__(
        self, label: str, env: dict[str, str] | None = None, cpus: set[int] | None = None, model_dir=None, repo=None
    ):
        self.label = label
        self.env = dict(env or {})
        self.cpus = cpus
        self.server: ServerProcess = launch_server(self.env, model_dir or MODELS_DIR, repo)
        pin(self.server.pid, cpus)  # before the interpreter starts its threads
        wait_ready(self.server, timeout=120.0)
        pin(self.server.pid, cpus)
        self.process = psutil.Process(self.server.pid)
        self.port = int(self.server.base_url.rsplit(":", 1)[1])
        self.client = httpx.Client(base_url=self.server.base_url, timeout=30.0)
        time.sleep(0.3)
        self.ready_rss = self.rss()

    def rss(self) -> int:
        return self.process.memory_info().rss

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def batch_stats(self, graph: str) -> BatchStats:
        return batch_stats(self.client.get("/metrics").text, graph)

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


class Mark(NamedTuple):
    """Clocks read at one window mark: wall time, then CPU seconds (service, load generator, the
    service's event-loop thread, all the service's live threads)."""

    wall: float
    server_cpu: float
    client_cpu: float
    loop_cpu: float
    threads_cpu: float


class ResourceWatch:
    """Samples a server's RSS every `interval_s` on a thread; records CPU seconds at window marks."""

    def __init__(self, server: BenchServer, interval_s: float = 0.05) -> None:
        self.server = server
        self.interval_s = interval_s
        self.peak_rss = server.rss()
        self.samples: list[tuple[float, int]] = []
        self.marks: dict[str, Mark] = {}
        self._client = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ResourceWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        started = time.perf_counter()
        while not self._stop.is_set():
            try:
                rss = self.server.rss()
            except psutil.Error:
                return
            self.peak_rss = max(self.peak_rss, rss)
            self.samples.append((time.perf_counter() - started, rss))
            self._stop.wait(self.interval_s)

    def mark(self, name: str) -> None:
        """The load generator's window hook: CPU seconds and wall time at "start" and "end"."""
        client = self._client.cpu_times()
        loop, threads = thread_cpu_seconds(self.server.process)
        self.marks[name] = Mark(
            time.perf_counter(), self.server.cpu_seconds(), client.user + client.system, loop, threads
        )

    def _delta(self, clock: str) -> float:
        if "start" not in self.marks or "end" not in self.marks:
            return float("nan")
        return getattr(self.marks["end"], clock) - getattr(self.marks["start"], clock)

    def _percent(self, clock: str) -> float:
        wall = self._delta("wall")
        return 100.0 * self._delta(clock) / wall if wall > 0 else float("nan")

    @property
    def loop_cpu_s(self) -> float:
        """CPU seconds of the service's event-loop thread over the measured window."""
        return self._delta("loop_cpu")

    @property
    def threads_cpu_s(self) -> float:
        """CPU seconds of all the service's threads over the window (same source as loop_cpu_s)."""
        return self._delta("threads_cpu")

    @property
    def cpu_percent(self) -> float:
        """Server CPU over the measured window, in % of one core."""
        return self._percent("server_cpu")

    @property
    def client_cpu_percent(self) -> float:
        """The load generator's own CPU over the window: near 100% means it, not the server, is the limit."""
        return self._percent("client_cpu")
