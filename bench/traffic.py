"""Raw HTTP/1.1 requests for each scenario, built once before the clock starts."""

from __future__ import annotations

import json

import numpy as np

from bench.loadgen import HOST, Traffic

VARIANTS = 64  # distinct bodies per scenario, sent in turn


def _request(method: str, target: str, port: int, body: bytes = b"", content_type: str | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{port}"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def ping(port: int) -> Traffic:
    return Traffic("/ping", (_request("GET", "/ping", port),), images=0)


def sample(port: int, n: int, fmt: str) -> Traffic:
    requests = tuple(_request("POST", f"/sample?n={n}&seed={seed}&format={fmt}", port) for seed in range(VARIANTS))
    return Traffic(f"/sample n={n} {fmt}", requests, images=n)


def decode(port: int, latent_dim: int, rows: int = 1) -> Traffic:
    """JSON latents in, the default PNG out (docs/api.md)."""
    return latents(port, "/decode", latent_dim, rows, name=f"/decode n={rows} json")


def latents(port: int, target: str, latent_dim: int, rows: int = 1, name: str | None = None) -> Traffic:
    """`{"latents": [[D floats] x rows]}` POSTed to any target: the service's /decode or a peer's route."""
    rng = np.random.default_rng(0)
    requests = tuple(
        _request(
            "POST",
            target,
            port,
            json.dumps({"latents": rng.standard_normal((rows, latent_dim)).round(6).tolist()}).encode(),
            "application/json",
        )
        for _ in range(VARIANTS)
    )
    return Traffic(name or f"{target} n={rows} json", requests, images=rows)


def _multipart(png: bytes, filename: str) -> tuple[bytes, str]:
    boundary = "benchboundary7d3f9a"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def upload(port: int, endpoint: str, pngs: list[bytes], query: str = "") -> Traffic:
    """One real PNG per request as multipart/form-data, to /encode or /reconstruct."""
    requests = []
    for index, png in enumerate(pngs):
        body, content_type = _multipart(png, f"digit{index}.png")
        requests.append(_request("POST", f"{endpoint}{query}", port, body, content_type))
    return Traffic(f"{endpoint} 1 png", tuple(requests), images=1)
