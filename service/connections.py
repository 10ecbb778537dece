"""Connection guards under uvicorn: what a hostile or broken client cannot do to the service.

uvicorn's HTTP protocol (httptools) accepts any number of connections, waits for a request's
headers and body without a deadline, and takes headers of any size, so one host can hold every
file descriptor the process has. GuardedProtocol adds, from Settings:

- a cap on open connections: one more gets 503 in the service's error shape, at once;
- a deadline for a request's headers, from the connection's start or the previous response;
- a body deadline of a base allowance plus the declared length at a minimum rate;
- a limit on the request line and headers together: beyond it 431.

Connections closed by a guard are counted in `vae_connections_closed_total{reason}`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import Settings
from service.metrics import Metrics


def _error(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the guards above; `guarded_protocol()` binds the limits."""

    settings: Settings
    metrics: Metrics | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._refused = False

    # --- guards ----------------------------------------------------------------------------

    def _close(self, reason: str, response: bytes | None = None) -> None:
        self._refused = True
        self._cancel_deadline()
        if self.metrics is not None:
            self.metrics.connections_closed.labels(reason).inc()
        if not self.transport.is_closing():
            if response is not None:
                self.transport.write(response)
            self.transport.close()

    def _arm(self, seconds: float, reason: str) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, self._close, reason)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # --- uvicorn's protocol, with the guards hooked in ------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.settings.max_connections
        if len(self.connections) > limit:
            message = f"the service holds its maximum of {limit} connections (VAE_MAX_CONNECTIONS); retry shortly"
            self._close("over_capacity", _error(503, "Service Unavailable", "not_ready", message))
            return
        self._arm(self.settings.header_timeout_s, "header_timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline is None:
            self._arm(self.settings.header_timeout_s, "header_timeout")

    def _count(self, size: int) -> None:
        self._header_bytes += size
        limit = self.settings.max_header_bytes
        if self._header_bytes > limit and not self._refused:
            message = f"the request line and headers exceed {limit} bytes (VAE_MAX_HEADER_BYTES)"
            self._close("headers_too_large", _error(431, "Request Header Fields Too Large", "invalid_request", message))

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._cancel_deadline()
        super().on_headers_complete()
        declared = next((value for key, value in self.headers if key == b"content-length"), b"0")
        length = int(declared) if declared.isdigit() else 0
        chunked = any(key == b"transfer-encoding" for key, _ in self.headers)
        if length or chunked:
            allowance = self.settings.body_timeout_s + length / self.settings.min_body_rate_bytes_s
            self._arm(allowance, "body_too_slow")

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's headers are due within the deadline too (keep-alive idles close sooner).
        if not self.transport.is_closing() and self._deadline is None:
            self._arm(self.settings.header_timeout_s, "header_timeout")


class WorkerProtocol(GuardedProtocol):
    """GuardedProtocol for `serve --workers N`: uvicorn imports it by name in each worker process,
    where the worker's app factory (`service.__main__.worker_app`) binds that process's limits."""


def guarded_protocol(settings: Settings, metrics: Metrics | None) -> type[GuardedProtocol]:
    """GuardedProtocol bound to these limits, for uvicorn.Config(http=...)."""
    return type("BoundGuardedProtocol", (GuardedProtocol,), {"settings": settings, "metrics": metrics})
