"""X-Request-ID on every HTTP request: the client's (if sane) or a new one, echoed in the response,
kept in scope["state"]["request_id"] (the OIP `id` when the body names none) and in every log line
written while the request runs."""

from __future__ import annotations

import contextvars
import logging
import random
import re

REQUEST_ID = contextvars.ContextVar("request_id", default="-")
HEADER = b"x-request-id"
SANE = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")
# Seeded once from the OS; drawing from it makes no system call, which would release the GIL and
# hand the core to a batch worker between requests (and so shrink the batches).
_IDS = random.Random()


def new_request_id() -> bytes:
    return b"%032x" % _IDS.getrandbits(128)


class RequestIdFilter(logging.Filter):
    """Adds %(request_id)s to log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class RequestIdMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for key, value in scope["headers"]:  # a loop, not next(generator): this runs on every request
            if key == HEADER:
                raw = value if SANE.match(value) else None
                break
        if raw is None:
            raw = new_request_id()
        request_id = raw.decode("ascii")
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER, raw)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
