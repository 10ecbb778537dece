"""Configuration shared by `Client` and `AsyncClient`: URL, timeout, retry policy, pool."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from ._transport import DEFAULT_RETRIES, DEFAULT_TIMEOUT, RetryPolicy, client_options, resolve_base_url

API_KEY_ENV_VAR = "VAE_API_KEY"


class ClientBase:
    """Holds the settings; subclasses choose the httpx client class and do the I/O.

    Arguments:
        base_url: the service, e.g. "http://localhost:8000"; default $VAE_URL, else that.
        timeout: seconds to wait for each request (an `httpx.Timeout` for per-phase limits,
            None for no limit); expiry raises `RequestTimeout`.
        retries: how many times a 429 or 503 answer is retried before its error is raised.
        backoff, max_backoff: first and longest wait between retries, in seconds, when the
            server sends no `Retry-After`; a `Retry-After` above `max_backoff` is not waited out.
        max_connections: size of the connection pool (how many requests are in flight at once).
        max_upload_images: most images per /encode, /reconstruct or /score request (the service's
            VAE_MAX_UPLOAD_IMAGES); more are sent as several requests and the results joined.
        api_key: sent as `Authorization: Bearer <key>` when the service requires keys
            (VAE_API_KEYS); default $VAE_API_KEY.
        headers: extra headers for every request.
        transport: an httpx transport, e.g. `httpx.MockTransport` in tests.
    """

    _http_class: ClassVar[type[Any]]

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.25,
        max_backoff: float = 30.0,
        max_connections: int = 100,
        max_upload_images: int = 64,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.timeout = timeout
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff)
        self.max_upload_images = max_upload_images
        api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV_VAR)
        if api_key:
            headers = {**(headers or {}), "Authorization": f"Bearer {api_key}"}
        self._http = self._http_class(**client_options(self.base_url, timeout, max_connections, headers, transport))

    def __repr__(self) -> str:
        retries = self.retry_policy.retries
        return f"{type(self).__name__}({self.base_url!r}, timeout={self.timeout!r}, retries={retries})"
