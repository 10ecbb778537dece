"""The service's HTTP/1.1 connections: httptools parses, this module runs each request's ASGI cycle.

uvicorn still runs the server (sockets, lifespan, signals, graceful shutdown, `--workers`); this
protocol replaces its per-connection `HttpToolsProtocol` (`uvicorn.Config(http=...)`), because
issue 17's profiles put more of a small request's time in that protocol's per-request machinery
(an Event, flow-control calls, a timer armed and cancelled per request, head and body written in
two socket calls) than in the service's own routes. Here a request costs one task and one write:

- the body is handed to `receive()` as it arrived, without waiting on an event when it is whole;
- the response head waits for the first body message and goes out with it in one write;
- deadlines are one number per connection, checked by one sweep per server tick instead of timers.

What a hostile or broken client cannot do, from Settings:

- hold more than `max_connections`: one more gets 503 in the service's error shape, at once;
- take longer than `header_timeout_s` for a request's headers, from the connection's start or the
  previous response, or idle longer than `keep_alive_timeout_s` between requests;
- send a body slower than `body_timeout_s` plus the declared length at `min_body_rate_bytes_s`;
- send a request line and headers over `max_header_bytes` (431), or bytes that are not HTTP (400).

Connections a guard closes are counted in `vae_connections_closed_total{reason}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
from collections import deque
from http import HTTPStatus
from typing import Any, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.utils import get_client_addr, get_local_addr, get_path_with_query_string, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from service.config import Settings
from service.metrics import Metrics

logger = logging.getLogger("uvicorn.error")
access_logger = logging.getLogger("uvicorn.access")

HEADER_NAME_RE = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')  # RFC 9110 token characters only
HEADER_VALUE_RE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
STATUS_LINES = {
    status: f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
    if status in HTTPStatus._value2member_map_
    else f"HTTP/1.1 {status} \r\n".encode()
    for status in range(100, 600)
}
# Header names already checked, by the bytes the app sent -> lower case: a service sends the same
# few names on every response, so each is checked once instead of once per response.
CHECKED_NAMES: dict[bytes, bytes] = {}
CHECKED_NAMES_LIMIT = 256
READ_HIGH_WATER = 64 * 1024  # body bytes buffered for a route that has not read them before reading pauses
# A smaller body is copied after the head into one buffer, uvloop's fastest write; a larger one goes
# out beside it in one vectored write instead of being copied again.
JOIN_LIMIT = 64 * 1024


def error_bytes(status: int, code: str, message: str) -> bytes:
    """A whole response in the service's error shape, for refusals made before any route runs."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def _sweep(loop: asyncio.AbstractEventLoop, state: ServerState, tick: float) -> None:
    """Close every connection past its deadline; re-arm while the server holds connections."""
    now = loop.time()
    for connection in list(cast("set[Any]", state.connections)):
        deadline = getattr(connection, "deadline", None)
        if deadline is not None and now >= deadline:
            connection.expire()
    state.vae_sweep = loop.call_later(tick, _sweep, loop, state, tick) if state.connections else None  # type: ignore[attr-defined]


class Cycle:
    """One request and its response: the ASGI `receive` and `send` of one task."""

    __slots__ = (
        "protocol",
        "scope",
        "body",
        "more_body",
        "delivered",
        "waiter",
        "keep_alive",
        "expect_100",
        "started",
        "complete",
        "disconnected",
        "head",
        "chunked",
        "remaining",
    )

    def __init__(self, protocol: GuardedProtocol, scope: dict[str, Any], keep_alive: bool, expect_100: bool) -> None:
        self.protocol = protocol
        self.scope = scope
        self.body: list[bytes] = []
        self.more_body = True  # the parser has not seen the body's end
        self.delivered = False  # receive() has returned the body's last message
        self.waiter: asyncio.Future[None] | None = None
        self.keep_alive = keep_alive
        self.expect_100 = expect_100
        self.started = False
        self.complete = False
        self.disconnected = False
        self.head = b""
        self.chunked = False
        self.remaining = 0

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def run(self, app: Any) -> None:
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:  # noqa: BLE001 -- whatever a route raises, the connection survives
            logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.started:
                await self._send_500()
            else:
                self.protocol.transport.close()
        else:
            if result is not None:
                logger.error("ASGI callable should return None, but returned '%s'.", result)
                self.protocol.transport.close()
            elif not self.started and not self.disconnected:
                logger.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.complete and not self.disconnected:
                logger.error("ASGI callable returned without completing response.")
                self.protocol.transport.close()

    async def _send_500(self) -> None:
        body = b"Internal Server Error"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"21"),
            (b"connection", b"close"),
        ]
        await self.send({"type": "http.response.start", "status": 500, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def receive(self) -> dict[str, Any]:
        protocol = self.protocol
        if self.expect_100:
            self.expect_100 = False
            if not protocol.transport.is_closing():
                protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # Wait while nothing is buffered, or, once the whole body went out, until the client leaves.
        while not (self.disconnected or self.complete) and (self.delivered or (self.more_body and not self.body)):
            protocol.resume_reading()
            self.waiter = protocol.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.disconnected or self.complete:
            return {"type": "http.disconnect"}
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        protocol.resume_reading()
        self.delivered = not self.more_body
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: dict[str, Any]) -> None:
        protocol = self.protocol
        if protocol.write_paused and not self.disconnected:
            await protocol.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            self.started = True
            self.expect_100 = False
            self.head = self._head(message["status"], message.get("headers", ()))
            return  # the head goes out with the first body message, in one write
        if self.complete:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")
        if kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            body, self.remaining = b"", 0
        elif self.chunked:
            body = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + (b"" if more_body else b"0\r\n\r\n")
        else:
            if len(body) > self.remaining:
                raise RuntimeError("Response content longer than Content-Length")
            self.remaining -= len(body)
        head, self.head = self.head, b""
        if head and len(body) > JOIN_LIMIT:
            protocol.transport.writelines((head, body))
        elif head or body:
            protocol.transport.write(head + body if head else body)
        if not more_body:
            if self.remaining:
                raise RuntimeError("Response content shorter than Content-Length")
            self.complete = True
            self.wake()
            protocol.response_done(self)

    def _head(self, status: int, headers: Any) -> bytes:
        protocol = self.protocol
        if protocol.access_log:
            scope: Any = self.scope
            access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                status,
            )
        parts = [STATUS_LINES[status], protocol.default_head()]
        length: int | None = None
        close = False
        values = []
        for sent, value in headers:
            name = CHECKED_NAMES.get(sent)
            if name is None:
                if HEADER_NAME_RE.search(sent):
                    raise RuntimeError("Invalid HTTP header name.")
                name = sent.lower()
                if len(CHECKED_NAMES) < CHECKED_NAMES_LIMIT:
                    CHECKED_NAMES[sent] = name
            values.append(value)
            if name == b"content-length" and length is None and not self.chunked:
                length = int(value)
            elif name == b"transfer-encoding" and value.lower() == b"chunked" and length is None:
                self.chunked = True
            elif name == b"connection" and b"close" in [token.strip().lower() for token in value.split(b",")]:
                self.keep_alive = False
                close = True
            parts += (name, b": ", value, b"\r\n")
        if HEADER_VALUE_RE.search(b"".join(values)):  # one search over every value: none may hold CR or LF
            raise RuntimeError("Invalid HTTP header value.")
        if not self.keep_alive and not close:
            parts.append(b"connection: close\r\n")
        if length is not None:
            self.remaining = length
        elif not self.chunked and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked = True  # neither a length nor chunks declared: chunks
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


class GuardedProtocol(asyncio.Protocol):
    """One client connection; `guarded_protocol()` binds the limits for uvicorn.Config(http=...)."""

    settings: Settings
    metrics: Metrics | None = None

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any], _loop: Any = None) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop: asyncio.AbstractEventLoop = _loop or asyncio.get_event_loop()
        self.root_path = config.root_path
        self.app_state = app_state
        self.access_log = access_logger.hasHandlers()
        self.server_state = server_state
        self.connections = cast("set[Any]", server_state.connections)  # uvicorn types it as its own protocols
        self.tasks = server_state.tasks
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.expect_100 = False
        self.declared = b"0"  # the request's Content-Length, as sent
        self.chunked = False  # the request declared a Transfer-Encoding
        self.current: Cycle | None = None  # the request the parser is reading
        self.active: Cycle | None = None  # the request being answered
        self.pipeline: deque[Cycle] = deque()  # requests read ahead of their turn
        self.read_paused = False
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.refused = False
        self.deadline: float | None = None
        self.deadline_reason: str | None = None
        self._defaults: tuple[Any, bytes] = (None, b"")

    # --- connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        self.server = get_local_addr(self.transport)
        self.client = get_remote_addr(self.transport)
        self.scheme = "https" if is_ssl(self.transport) else "http"
        state = self.server_state
        if getattr(state, "vae_sweep", None) is None:
            settings = self.settings
            tick = min(settings.header_timeout_s, settings.body_timeout_s, settings.keep_alive_timeout_s) / 4
            tick = min(max(tick, 0.02), 0.5)  # a deadline is kept to within a quarter of the shortest
            state.vae_sweep = self.loop.call_later(tick, _sweep, self.loop, state, tick)  # type: ignore[attr-defined]
        limit = self.settings.max_connections
        if len(self.connections) > limit:
            message = f"the service holds its maximum of {limit} connections (VAE_MAX_CONNECTIONS); retry shortly"
            self.refuse("over_capacity", error_bytes(503, "not_ready", message))
            return
        self.expect("header_timeout", self.settings.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.deadline = None
        for cycle in (self.active, *self.pipeline):
            if cycle is not None and not cycle.complete:
                cycle.disconnected = True
                cycle.wake()
        self.pipeline.clear()
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        pass  # a half-closed client still gets its answer; connection_lost follows

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self.current is not None:
                self.current.keep_alive = False  # no protocol switch here: answer over HTTP/1.1, then close
        except httptools.HttpParserError as exc:
            if not self.refused:
                self.refuse("invalid_http", error_bytes(400, "invalid_request", f"not a valid HTTP/1.1 request: {exc}"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    async def drain(self) -> None:
        if self.drained is None or self.drained.done():
            self.drained = self.loop.create_future()
        await self.drained

    def resume_reading(self) -> None:
        if self.read_paused and self.active is not None and not self.pipeline:
            self.read_paused = False
            self.transport.resume_reading()

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    # --- guards -----------------------------------------------------------------------------

    def expect(self, reason: str | None, seconds: float) -> None:
        """The connection must make progress within `seconds`; past it, close (counting `reason`)."""
        self.deadline = self.loop.time() + seconds
        self.deadline_reason = reason

    def expire(self) -> None:
        self.deadline = None
        if self.deadline_reason is None:
            self.transport.close()  # an idle kept-alive connection: an ordinary close, not counted
        else:
            self.refuse(self.deadline_reason)

    def refuse(self, reason: str, response: bytes | None = None) -> None:
        self.refused = True
        self.deadline = None
        if self.metrics is not None:
            self.metrics.connections_closed.labels(reason).inc()
        if not self.transport.is_closing():
            if response is not None:
                self.transport.write(response)
            self.transport.close()

    def _count(self, size: int) -> None:
        self.header_bytes += size
        limit = self.settings.max_header_bytes
        if self.header_bytes > limit and not self.refused:
            message = f"the request line and headers exceed {limit} bytes (VAE_MAX_HEADER_BYTES)"
            self.refuse("headers_too_large", error_bytes(431, "invalid_request", message))

    # --- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.expect_100 = False
        self.declared = b"0"
        self.chunked = False
        if self.deadline is None:
            self.expect("header_timeout", self.settings.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        name = name.lower()
        if name == b"content-length":
            self.declared = value
        elif name == b"transfer-encoding":
            self.chunked = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100 = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        parser = self.parser
        http_version = parser.get_http_version()
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": http_version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": self.root_path,
            "path": self.root_path + path,
            "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": url.query or b"",
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        keep_alive = http_version != "1.0" and parser.should_keep_alive()
        self.current = cycle = Cycle(self, scope, keep_alive, self.expect_100)
        length = int(self.declared) if self.declared.isdigit() else 0  # llhttp refuses malformed lengths
        if length or self.chunked:
            settings = self.settings
            self.expect("body_too_slow", settings.body_timeout_s + length / settings.min_body_rate_bytes_s)
        else:
            self.deadline = None
        if self.active is None:
            self.start(cycle)
        else:  # pipelined: read no further until the requests before it are answered
            self.pipeline.append(cycle)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.current
        if self.refused or cycle is None or cycle.complete:
            return  # the route answered already (say 413): the rest of its body is read past
        cycle.body.append(body)
        if cycle is self.active and sum(map(len, cycle.body)) > READ_HIGH_WATER:
            self.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        cycle = self.current
        if self.refused or cycle is None:
            return
        cycle.more_body = False
        if cycle.complete:  # answered before its body ended: now the connection idles
            self.expect_next()
        else:
            self.deadline = None  # the route has it; the service's own deadlines apply
            cycle.wake()

    # --- responses -------------------------------------------------------------------------

    def start(self, cycle: Cycle) -> None:
        self.active = cycle
        task = self.loop.create_task(cycle.run(self.app))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def response_done(self, cycle: Cycle) -> None:
        self.server_state.total_requests += 1
        if not cycle.keep_alive:
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        self.active = None
        if self.pipeline:
            self.start(self.pipeline.popleft())
            return
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        if not cycle.more_body:  # else the rest of the body is read past under its own deadline
            self.expect_next()

    def expect_next(self) -> None:
        """Between requests: the next one's headers are due, and an idle connection closes sooner."""
        settings = self.settings
        if settings.keep_alive_timeout_s < settings.header_timeout_s:
            self.expect(None, settings.keep_alive_timeout_s)
        else:
            self.expect("header_timeout", settings.header_timeout_s)

    def default_head(self) -> bytes:
        """uvicorn's default headers (date, server), joined once per change of the list."""
        defaults = self.server_state.default_headers
        if self._defaults[0] is not defaults:
            joined = b"".join(name + b": " + value + b"\r\n" for name, value in defaults)
            self._defaults = (defaults, joined)
        return self._defaults[1]

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close when idle, else after the response in progress."""
        if self.active is None or self.active.complete:
            self.transport.close()
        else:
            self.active.keep_alive = False
            self.pipeline.clear()


class WorkerProtocol(GuardedProtocol):
    """GuardedProtocol for `serve --workers N`: uvicorn imports it by name in each worker process,
    where the worker's app factory (`service.__main__.worker_app`) binds that process's limits."""


def guarded_protocol(settings: Settings, metrics: Metrics | None) -> type[GuardedProtocol]:
    """GuardedProtocol bound to these limits, for uvicorn.Config(http=...)."""
    return type("BoundGuardedProtocol", (GuardedProtocol,), {"settings": settings, "metrics": metrics})
