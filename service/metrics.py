"""Prometheus metrics on a per-app CollectorRegistry, and the ASGI middleware that counts requests."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vae_http_requests",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vae_http_request_duration_seconds",
            "HTTP request latency by endpoint",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge("vae_http_requests_in_progress", "HTTP requests being served", registry=self.registry)
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
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[tuple[str, str], Histogram] = {}

    def graph_observer(self, model: str, graph: str, queued_rows: Callable[[], float]) -> GraphObserver:
        self.queue_depth.labels(model, graph).set_function(queued_rows)
        return GraphObserver(
            self.batch_rows.labels(model, graph),
            self.inference.labels(model, graph),
            self.queue_wait.labels(model, graph),
        )

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        key = (endpoint, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(endpoint, method, str(status))
        counter.inc()
        latency = self._latency_children.get(key[:2])
        if latency is None:
            latency = self._latency_children[key[:2]] = self.latency.labels(endpoint, method)
        latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): counts and times every HTTP request by route template."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.in_progress.dec()
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(endpoint, scope["method"], status, time.perf_counter() - started)
