"""The HTTP request series kept as plain ints (service.metrics.HttpStats) read exactly as
prometheus_client's own Counter, Histogram and Gauge would expose them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.metrics import LATENCY_BUCKETS, Metrics

# On a bound, between bounds, past the last one, and label sets seen twice.
OBSERVED = [
    ("/decode", "POST", 200, 0.0005),
    ("/decode", "POST", 200, 0.0031),
    ("/decode", "POST", 422, 0.0002),
    ("/sample", "GET", 200, 42.0),
    ("unmatched", "GET", 404, 0.01),
]


def reference(in_progress: int) -> bytes:
    registry = CollectorRegistry(auto_describe=True)
    labels = ["endpoint", "method", "status"]
    requests = Counter("vae_http_requests", "HTTP requests by endpoint, method and status", labels, registry=registry)
    latency = Histogram(
        "vae_http_request_duration_seconds",
        "HTTP request latency by endpoint",
        ["endpoint", "method"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    gauge = Gauge("vae_http_requests_in_progress", "HTTP requests being served", registry=registry)
    for endpoint, method, status, seconds in OBSERVED:
        requests.labels(endpoint, method, str(status)).inc()
        latency.labels(endpoint, method).observe(seconds)
    gauge.set(in_progress)
    return generate_latest(registry)


def http_series(text: bytes) -> list[str]:
    return [line for line in text.decode().splitlines() if "vae_http_request" in line]


def test_the_http_series_read_as_prometheus_clients_own_metrics_would():
    metrics = Metrics()
    for endpoint, method, status, seconds in OBSERVED:
        metrics.http.observe(endpoint, method, status, seconds)
    metrics.http.in_progress = 3
    ours = http_series(metrics.render())
    assert ours == http_series(reference(3))
    assert 'vae_http_request_duration_seconds_bucket{endpoint="/decode",le="0.0005",method="POST"} 2.0' in ours
