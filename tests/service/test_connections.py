"""service/connections.py against the real service: idle and slow connections are closed at their
deadlines, oversized headers get 431, one connection over the cap gets 503 at once, and normal
requests keep working meanwhile."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from devtools.live import start_server

LIMITS = {
    "VAE_HEADER_TIMEOUT_S": "0.6",
    "VAE_BODY_TIMEOUT_S": "0.6",
    "VAE_MIN_BODY_RATE_BYTES_S": "1000",
    "VAE_MAX_HEADER_BYTES": "4096",
    "VAE_MAX_CONNECTIONS": "12",
}


@pytest.fixture(scope="module")
def guarded():
    server = start_server(LIMITS)
    yield server
    server.stop()


def connect(server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before."""
    started, received = time.monotonic(), b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


def closed_reasons(server) -> dict[str, float]:
    text = httpx.get(f"{server.base_url}/metrics").text
    found = {}
    for line in text.splitlines():
        if line.startswith("vae_connections_closed_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(line.rsplit(" ", 1)[1])
    return found


def test_an_idle_connection_is_closed_at_the_header_deadline(guarded):
    with connect(guarded) as sock:
        elapsed, received = closed_after(sock)
    assert 0.4 < elapsed < 2.5 and received == b""
    assert closed_reasons(guarded).get("header_timeout", 0) >= 1


def test_headers_trickled_slowly_are_cut_off(guarded):
    with connect(guarded) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for _ in range(10):
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            time.sleep(0.2)
        elapsed, _ = closed_after(sock)
    assert time.monotonic() - started < 3


def test_a_body_slower_than_the_minimum_rate_is_cut_off(guarded):
    with connect(guarded) as sock:
        sock.sendall(
            b"POST /decode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
        )
        started = time.monotonic()
        for _ in range(20):
            try:
                sock.sendall(b" ")
            except OSError:
                break
            time.sleep(0.1)
        closed_after(sock)
    assert time.monotonic() - started < 2.5  # 0.6 s + 500 bytes at 1000 B/s
    assert closed_reasons(guarded).get("body_too_slow", 0) >= 1


def test_oversized_headers_get_431_in_the_error_shape(guarded):
    with connect(guarded) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        _, received = closed_after(sock)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431")
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_request" and "VAE_MAX_HEADER_BYTES" in error["message"]


def test_one_connection_over_the_cap_gets_503_at_once_and_others_keep_working(guarded):
    held = [connect(guarded) for _ in range(12)]  # the cap; the client below is one more
    try:
        with connect(guarded) as extra:
            elapsed, received = closed_after(extra)
        assert received.startswith(b"HTTP/1.1 503") and elapsed < 0.5
        assert json.loads(received.partition(b"\r\n\r\n")[2])["error"]["code"] == "not_ready"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with httpx.Client(base_url=guarded.base_url) as http:
        for _ in range(5):  # a kept-alive client is unaffected by the guards
            assert http.post("/sample", params={"n": 1}).status_code == 200
    assert closed_reasons(guarded).get("over_capacity", 0) >= 1
