"""Prometheus metrics on a per-app CollectorRegistry, and the ASGI middleware that counts requests."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INFERENCE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

__all__ = ["Metrics", "MetricsMiddleware", "CONTENT_TYPE_LATEST"]

# The *_created series double the exposition for no use here.
disable_created_metrics()


class GraphObserver:
    """Receives batch statistics from one GraphBatcher's worker thread (prometheus is thread-safe)."""

    def __init__(self, batch_rows: Histogram, inference: Histogram, queue_wait: Histogram) -> None:
        self.batch_rows, self.inference, self.queue_wait = batch_rows, inference, queue_wait

    def observe_batch(self, rows: int, inference_s: float, queue_waits_s: Sequence[float]) -> None:
        self.batch_rows.observe(rows)
        self.inference.observe(inference_s)
        for wait in queue_waits_s:
            self.queue_wait.observe(wait)


class HttpStats:
    """The HTTP request series as plain ints, read by the registry at each scrape.

    Every request updates them, so they skip prometheus_client's per-value locks: only the event
    loop's thread writes them (each `--workers` process has its own), and a scrape copies each
    dict in one C call, which holds the GIL throughout. They are exposed exactly as a Counter,
    a Histogram and a Gauge with these names would be.
    """

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = (*buckets, float("inf"))
        self.in_progress = 0
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}  # per bound, not cumulative; then the sum

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        latency = self.latency.get(key[:2])
        if latency is None:
            latency = self.latency[key[:2]] = [0.0] * (len(self.bounds) + 1)
        latency[bisect.bisect_left(self.bounds, seconds)] += 1  # the first bound >= seconds, as Histogram
        latency[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "vae_http_requests", "HTTP requests by endpoint, method and status", labels=["endpoint", "method", "status"]
        )
        for (endpoint, method, status), count in list(self.counts.items()):
            requests.add_metric([endpoint, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "vae_http_request_duration_seconds", "HTTP request latency by endpoint", labels=["endpoint", "method"]
        )
        for labels, values in list(self.latency.items()):
            values = list(values)
            cumulative, buckets = 0.0, []
            for bound, seen in zip(self.bounds, values[:-1], strict=True):
                cumulative += seen
                buckets.append((floatToGoString(bound), cumulative))
            latency.add_metric(list(labels), buckets, values[-1])
        yield latency
        yield GaugeMetricFamily("vae_http_requests_in_progress", "HTTP requests being served", value=self.in_progress)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = HttpStats()
        self.registry.register(self.http)
        self.connections_closed = Counter(
            "vae_connections_closed",
            "Connections closed by a guard: over_capacity, header_timeout, body_too_slow, headers_too_large",
            ["reason"],
            registry=self.registry,
        )
        labels = ["model", "graph"]
        self.batch_rows = Histogram(
            "vae_batch_size_rows",
            "Rows (images) per onnxruntime call",
            labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "vae_inference_seconds",
            "onnxruntime time per batch",
            labels,
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "vae_queue_wait_seconds",
            "Time a request waits before its first rows start",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge("vae_queue_depth_rows", "Rows waiting for a batch", labels, registry=self.registry)

    def graph_observer(self, model: str, graph: str, queued_rows: Callable[[], float]) -> GraphObserver:
        self.queue_depth.labels(model, graph).set_function(queued_rows)
        return GraphObserver(
            self.batch_rows.labels(model, graph),
            self.inference.labels(model, graph),
            self.queue_wait.labels(model, graph),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): counts and times every HTTP request by route template."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.http = metrics.http

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        http = self.http
        http.in_progress += 1
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            http.in_progress -= 1
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            http.observe(endpoint, scope["method"], status, time.perf_counter() - started)
