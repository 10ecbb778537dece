"""HTTP mechanics shared by `Client` and `AsyncClient`, with no I/O of its own.

A `Call` says what to send and how to read the answer; `RetryPolicy` says whether to send it
again and after how long; `error_from_response` / `error_from_exception` map failures to the
typed exceptions in `errors`. The two clients only add the part that differs: `send` and
`sleep`, blocking or awaited.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from ._version import __version__
from .errors import (
    APIError,
    ConnectionFailed,
    RequestTimeout,
    TransportError,
    Unavailable,
    VAEError,
    error_class,
)

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_URL = "http://localhost:8000"
URL_ENV_VAR = "VAE_URL"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
RETRYABLE_STATUSES = frozenset({429, 503})


def resolve_base_url(base_url: str | None) -> str:
    """The explicit URL, else $VAE_URL, else http://localhost:8000."""
    return (base_url or os.environ.get(URL_ENV_VAR) or DEFAULT_URL).rstrip("/")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry 429 and 503 answers, at most `retries` times after the first attempt.

    The wait honours the server's `Retry-After` (never sooner, plus a little jitter so that a
    burst of rejected requests does not come back in lockstep); without one it backs off
    exponentially from `backoff` seconds. A `Retry-After` longer than `max_backoff` is not
    waited out: the error is raised at once and carries `retry_after` for the caller to decide.
    """

    retries: int = DEFAULT_RETRIES
    backoff: float = 0.25
    max_backoff: float = 30.0
    statuses: frozenset[int] = RETRYABLE_STATUSES
    jitter: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff and max_backoff must be >= 0 seconds")

    def delay(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to stop and return/raise."""
        if response.status_code not in self.statuses or attempt >= self.retries:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            return self.backoff_delay(attempt)
        if retry_after > self.max_backoff:
            return None
        return retry_after + self.jitter() * min(self.backoff, self.max_backoff - retry_after)

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": between half and all of backoff * 2**attempt."""
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return ceiling / 2 + self.jitter() * ceiling / 2


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None if absent/bad."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One endpoint call: the request to build and how to turn a success into a result.

    `accept` lists error statuses that `parse` handles itself (`/ready` answers 503 when not
    ready, which is a result, not a failure); `retry=False` sends the request exactly once.
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    retry: bool = True
    accept: frozenset[int] = frozenset()

    def request_options(self) -> dict[str, Any]:
        """Keyword arguments for `httpx.Client.request` / `httpx.AsyncClient.request`."""
        return {
            "method": self.method,
            "url": self.path,
            # httpx would send None as an empty value; omitting it gives the server's default.
            "params": {key: value for key, value in self.params.items() if value is not None},
            "headers": dict(self.headers),
            "content": self.content,
            "files": self.files,
        }

    def retry_delay(self, policy: RetryPolicy, attempt: int, response: httpx.Response) -> float | None:
        return policy.delay(attempt, response) if self.retry else None

    def result(self, response: httpx.Response) -> T:
        """The parsed result, or the typed exception for an error status."""
        if response.is_error and response.status_code not in self.accept:
            raise error_from_response(response)
        return self.parse(response)


@dataclass(frozen=True)
class Plan(Generic[R, T]):
    """Calls whose results merge into one answer: uploads above one request's image limit."""

    calls: list[Call[R]]
    merge: Callable[[list[R]], T]


def error_body(response: httpx.Response) -> tuple[str | None, str, Any]:
    """(code, message, details) from the service's error shape, tolerating other bodies."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = error.get("message") or response.reason_phrase
        return error.get("code"), str(message), error.get("details")
    if isinstance(body, dict) and "detail" in body:  # a framework default slipped through
        return None, json.dumps(body["detail"]) if not isinstance(body["detail"], str) else body["detail"], None
    text = response.text.strip()[:500] if response.content else ""
    return None, text or response.reason_phrase or f"HTTP {response.status_code}", None


def error_from_response(response: httpx.Response) -> APIError:
    """The typed exception for an error response (see errors.ERROR_BY_CODE)."""
    code, message, details = error_body(response)
    status = response.status_code
    return error_class(status, code)(
        message,
        status=status,
        code=code or f"http_{status}",
        details=details,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def error_from_exception(exc: httpx.TransportError, base_url: str) -> TransportError:
    """The typed exception for a request that got no HTTP answer."""
    where = f"{exc.request.method} {exc.request.url}" if _has_request(exc) else base_url
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(
            f"{where}: no answer within the client timeout ({type(exc).__name__}); "
            "pass a larger timeout to Client(timeout=...) / --timeout",
        )
    if isinstance(exc, httpx.ConnectError):
        return ConnectionFailed(
            f"cannot connect to {base_url} ({exc}); is the service running? "
            f"Choose the server with base_url / --url / ${URL_ENV_VAR}",
        )
    return TransportError(f"{where}: {type(exc).__name__}: {exc}")


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when the request is unknown
    except RuntimeError:
        return False
    return True


def unexpected_response(response: httpx.Response, expected: str, problem: Exception) -> APIError:
    """A 2xx answer the SDK cannot read (a proxy page, a contract mismatch)."""
    return APIError(
        f"expected {expected} from {response.request.method} {response.request.url}, got "
        f"{response.headers.get('content-type', 'no content type')}: {problem}",
        status=response.status_code,
        code="unexpected_response",
    )


def client_options(
    base_url: str,
    timeout: float | httpx.Timeout | None,
    max_connections: int,
    headers: Mapping[str, str] | None,
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None,
) -> dict[str, Any]:
    """Constructor arguments shared by httpx.Client and httpx.AsyncClient."""
    options: dict[str, Any] = {
        "base_url": base_url,
        "timeout": timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        "headers": {"User-Agent": f"vae-client/{__version__}", **(headers or {})},
    }
    if transport is not None:
        options["transport"] = transport
    return options


@dataclass
class ReadyPoll:
    """The state of `wait_until_ready`: the latest answer, and when to stop asking."""

    base_url: str
    timeout: float
    interval: float
    readiness: Any = None
    deadline: float = 0.0
    last_problem: str = "no answer yet"

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def ready(self, outcome: Any) -> bool:
        """Record one probe (a Readiness, or the ConnectionFailed it raised); True once ready."""
        if isinstance(outcome, VAEError):
            self.last_problem = str(outcome)
            return False
        self.readiness = outcome
        self.last_problem = f"{outcome.code}: {outcome.message}"
        return bool(outcome)

    def next_delay(self) -> float:
        """Seconds until the next probe; raises `Unavailable` once the deadline has passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Unavailable(
                f"{self.base_url} not ready after {self.timeout:g}s (last: {self.last_problem})",
                code="not_ready",
            )
        return min(self.interval, remaining)
