"""`python -m bench --soak`: RSS over a long overload run that gets 429s.

A service with a small queue (VAE_MAX_QUEUE_ROWS=512, VAE_MAX_SAMPLE_N=256) takes 64 closed-loop
connections of mixed traffic (/sample n=256 npy, /decode n=1, /reconstruct of one PNG) for
`seconds`; its RSS is sampled every second. Flat means: no growth after the first minute beyond
allocator noise (the criterion is printed with the numbers).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from bench import traffic
from bench.loadgen import LoadResult, Traffic, closed_loop
from bench.server import BenchServer, ResourceWatch
from bench.suite import cpu_layout
from devtools.images import digit_png_bytes

MB = 1024 * 1024
SOAK_ENV = {"VAE_MAX_QUEUE_ROWS": "512", "VAE_MAX_SAMPLE_N": "256"}
CONCURRENCY = 64
FLAT_MB = 10.0  # allowed growth from the end of the first minute to the end


@dataclass
class SoakResult:
    seconds: float
    started_at: float
    load: LoadResult
    ready_rss: int
    samples: list[tuple[float, int]]
    cpu_percent: float

    def rss_at(self, t: float) -> int:
        return next((rss for at, rss in self.samples if at >= t), self.samples[-1][1])

    @property
    def settle_s(self) -> float:
        return min(60.0, self.seconds / 5)

    @property
    def growth_mb(self) -> float:
        return (self.samples[-1][1] - self.rss_at(self.settle_s)) / MB

    @property
    def slope_mb_per_min(self) -> float:
        points = [(t, r) for t, r in self.samples if t >= self.settle_s]
        if len(points) < 3:
            return float("nan")
        t, r = np.array(points, dtype=float).T
        return float(np.polyfit(t / 60.0, r / MB, 1)[0])

    @property
    def flat(self) -> bool:
        return self.growth_mb < FLAT_MB


def run_soak(seconds: float = 300.0) -> SoakResult:
    server_cpus, client_cpus = cpu_layout()
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    server = BenchServer("soak", SOAK_ENV, server_cpus)
    try:
        info = server.get("/models").json()
        latent_dim = next(m for m in info["models"] if m["name"] == info["default"])["card"]["latent_dim"]
        pngs = [digit_png_bytes(i) for i in range(8)]
        mixed = Traffic(
            "mixed overload",
            traffic.sample(server.port, 256, "npy").requests[:8]
            + traffic.decode(server.port, latent_dim).requests[:8]
            + traffic.upload(server.port, "/reconstruct", pngs).requests,
        )
        started_at = time.time()
        with ResourceWatch(server, interval_s=1.0) as watch:
            load = closed_loop(
                server.port, mixed, CONCURRENCY, seconds, warmup_s=0.0, max_requests=10**8, hook=watch.mark
            )
        return SoakResult(seconds, started_at, load, server.ready_rss, watch.samples, watch.cpu_percent)
    finally:
        server.stop()


def markdown(result: SoakResult, plot_name: str | None = "soak.png") -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(result.started_at))
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.load.statuses.items(), key=lambda kv: str(kv[0])))
    peak = max(r for _, r in result.samples)
    lines = [
        f"Soak, {when}: {result.seconds:.0f} s of {CONCURRENCY} closed-loop connections, mixed /sample n=256 npy, "
        f"/decode n=1 and /reconstruct, against a service with {', '.join(f'{k}={v}' for k, v in SOAK_ENV.items())}.",
        "",
        f"- responses by status: {statuses}",
        f"- server CPU {result.cpu_percent:.0f}% of one core",
        f"- RSS: at ready {result.ready_rss / MB:.0f} MB; after {result.settle_s:.0f} s "
        f"{result.rss_at(result.settle_s) / MB:.0f} MB; at the end {result.samples[-1][1] / MB:.0f} MB; "
        f"peak {peak / MB:.0f} MB",
        f"- growth after {result.settle_s:.0f} s: {result.growth_mb:+.1f} MB (slope {result.slope_mb_per_min:+.2f} MB/min); "
        f"flat (< {FLAT_MB:g} MB): {'yes' if result.flat else '**no**'}",
    ]
    if plot_name:
        lines += ["", f"![RSS during the soak]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot(result: SoakResult, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5), dpi=110)
    axis.plot([t for t, _ in result.samples], [r / MB for _, r in result.samples])
    axis.set_xlabel("seconds under overload")
    axis.set_ylabel("service RSS (MB)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.set_title("RSS during the soak (429s expected)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
