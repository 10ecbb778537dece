"""service/connections.py speaks HTTP/1.1 as clients expect: over raw sockets against the real
service, and with small ASGI apps on the same uvicorn server for what the service's routes never
do (stream, fail, forget to answer)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from devtools.live import free_port
from service.config import Settings
from service.connections import guarded_protocol

LATENT = json.dumps({"latents": [[0.0] * 32]}).encode()


def connect(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        "Host: x",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One response (status line, headers, body by content-length or chunks) off `buffer` + socket."""

    def fill() -> None:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer.extend(chunk)

    while b"\r\n\r\n" not in buffer:
        fill()
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    del buffer[: len(head) + 4]
    status, *lines = head.split(b"\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines)}
    if b"content-length" in headers:
        size = int(headers[b"content-length"])
        while len(buffer) < size:
            fill()
        body = bytes(buffer[:size])
        del buffer[:size]
        return status, headers, body
    body = b""
    while True:
        while b"\r\n" not in buffer:
            fill()
        line, _, _ = bytes(buffer).partition(b"\r\n")
        size = int(line, 16)
        while len(buffer) < len(line) + 2 + size + 2:
            fill()
        body += bytes(buffer[len(line) + 2 : len(line) + 2 + size])
        del buffer[: len(line) + 2 + size + 2]
        if size == 0:
            return status, headers, body


def closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# --- the real service ---------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order_on_one_connection(live_server):
    with connect(live_server.base_url) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            + post("/decode?format=json", LATENT)
            + b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(3)]
    assert [status.split(b" ")[1] for status, _, _ in answers] == [b"200", b"200", b"404"]
    assert json.loads(answers[1][2])["images"][0]  # the decode's answer, not the health check's
    assert json.loads(answers[2][2])["error"]["code"]


def test_expect_100_continue_gets_its_interim_answer_before_the_body(live_server):
    with connect(live_server.base_url) as sock:
        request = post("/decode?format=json", LATENT, "Expect: 100-continue")
        head, _, body = request.partition(b"\r\n\r\n")
        sock.sendall(head + b"\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        status, _, answer = read_response(sock, bytearray())
    assert status.startswith(b"HTTP/1.1 200") and json.loads(answer)["images"]


def test_bytes_that_are_not_http_get_400_in_the_error_shape_and_the_service_keeps_serving(live_server):
    with connect(live_server.base_url) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
        status, headers, body = read_response(sock, bytearray())
        assert closed(sock)
    assert status.startswith(b"HTTP/1.1 400") and headers[b"content-type"] == b"application/json"
    assert json.loads(body)["error"]["code"] == "invalid_request"
    assert httpx.get(f"{live_server.base_url}/health").status_code == 200
    metrics = httpx.get(f"{live_server.base_url}/metrics").text
    assert 'vae_connections_closed_total{reason="invalid_http"}' in metrics


def test_connection_close_and_http_1_0_close_after_their_answer(live_server):
    for request in (
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.0\r\n\r\n",
    ):
        with connect(live_server.base_url) as sock:
            sock.sendall(request)
            status, headers, _ = read_response(sock, bytearray())
            assert status.split(b" ")[1] == b"200" and headers[b"connection"] == b"close"
            assert closed(sock)


def test_a_chunked_request_body_is_read_whole(live_server):
    body = LATENT
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    with connect(live_server.base_url) as sock:
        sock.sendall(
            b"POST /decode?format=json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        )
        status, _, answer = read_response(sock, bytearray())
    assert status.startswith(b"HTTP/1.1 200") and len(json.loads(answer)["images"]) == 1


def test_head_answers_headers_only(live_server):
    with connect(live_server.base_url) as sock:
        sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10)
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"}"):
            received += sock.recv(65536)
    first, second = received.split(b"HTTP/1.1 ")[1:]
    assert first.split(b"\r\n\r\n", 1)[1] == b""  # no body after HEAD's headers
    assert json.loads(second.split(b"\r\n\r\n", 1)[1])


def test_an_oversized_declared_body_is_refused_before_it_is_sent(live_server):
    # The declared length alone exceeds the service's default body limit: refused before any byte.
    with connect(live_server.base_url) as sock:
        sock.sendall(
            b"POST /decode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 900000000\r\n\r\n"
        )
        status, _, body = read_response(sock, bytearray())
    assert status.startswith(b"HTTP/1.1 413") and json.loads(body)["error"]["code"]


def test_a_client_gone_mid_body_costs_nothing(live_server):
    for _ in range(20):
        with connect(live_server.base_url) as sock:
            sock.sendall(post("/decode", LATENT)[:-10])
    with httpx.Client(base_url=live_server.base_url) as http:
        assert http.post("/decode", params={"format": "json"}, json={"latents": [[0.0] * 32]}).status_code == 200


# --- the protocol under small ASGI apps --------------------------------------------------


async def streaming(scope, receive, send):
    """Answers in pieces without a length (chunked); /big: 8 MiB in one message; /fail: raises;
    /silent: returns without answering; /inject-*: sends a header that would split the response."""
    if scope["type"] != "http":
        return
    await receive()
    path = scope["path"]
    if path == "/fail":
        raise RuntimeError("a route's bug")
    if path == "/silent":
        return
    if path.startswith("/inject-"):
        bad = {"/inject-value": (b"x-note", b"ok\r\nset-cookie: stolen"), "/inject-name": (b"x-a\r\nx-b", b"1")}[path]
        headers = [(b"content-length", b"2"), (b"X-Fine", b"yes"), bad]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"no"})
        return
    if path == "/big":
        body = bytes(range(256)) * (32 * 1024)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
        )
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for part in (b"one ", b"two ", b"", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
        await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def small_server() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        streaming,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="critical",
        http=guarded_protocol(Settings(), None),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_response_without_a_length_is_sent_in_chunks(small_server):
    with connect(small_server) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        buffer = bytearray()
        for _ in range(2):  # and the connection is ready for the next request
            _, headers, body = read_response(sock, buffer)
            assert headers[b"transfer-encoding"] == b"chunked" and body == b"one two three"


@pytest.mark.parametrize("path", ["/inject-value", "/inject-name", "/inject-value"])  # twice: names are cached
def test_a_header_that_would_split_the_response_closes_the_connection_unsent(small_server, path):
    with connect(small_server) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert b"stolen" not in received and b"x-b" not in received and b"HTTP/1.1 200" not in received


def test_a_large_response_arrives_whole(small_server):
    response = httpx.get(f"{small_server}/big", timeout=30)
    assert response.status_code == 200 and response.content == bytes(range(256)) * (32 * 1024)


def test_a_route_that_raises_or_never_answers_gets_500_and_the_server_lives_on(small_server):
    for path in ("/fail", "/silent"):
        response = httpx.get(f"{small_server}{path}")
        assert response.status_code == 500 and response.headers["connection"] == "close"
    assert httpx.get(f"{small_server}/stream").text == "one two three"
