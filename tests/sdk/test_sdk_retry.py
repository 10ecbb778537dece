"""Retries, backoff and error mapping, pinned against a scripted server (httpx.MockTransport).

These run the real Client and AsyncClient code paths; only the network is replaced, so the
exact sequence of status codes and Retry-After values is under the test's control. The
same behaviour against the real service is in test_sdk_live_retry.py.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest

import vae_client
from vae_client import AsyncClient, Client
from vae_client._transport import RetryPolicy, error_from_response, parse_retry_after

IMAGES = np.zeros((2, 1, 28, 28), np.float32)


def npy_response(array: np.ndarray = IMAGES) -> httpx.Response:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return httpx.Response(
        200,
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy", "X-Model": "mnist", "X-Latent-Dim": "32"},
    )


def error_response(status: int, code: str, message: str = "nope", retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


class ScriptedServer:
    """Answers requests from a list, in order, and records what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records every backoff wait (sync and async) instead of sleeping."""
    waited: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr("vae_client.client.time.sleep", waited.append)
    monkeypatch.setattr("vae_client.async_client.asyncio.sleep", fake_async_sleep)
    return waited


def run_sync(server: ScriptedServer, call: Callable, **client_options) -> object:
    with Client("http://vae.test", transport=httpx.MockTransport(server), **client_options) as client:
        return call(client)


def run_async(server: ScriptedServer, call: Callable, **client_options) -> object:
    async def main() -> object:
        async with AsyncClient("http://vae.test", transport=httpx.MockTransport(server), **client_options) as client:
            return await call(client)

    return asyncio.run(main())


both_clients = pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])


@both_clients
def test_429_is_retried_until_the_queue_has_room(run, sleeps):
    full = error_response(429, "queue_full", retry_after="0")
    server = ScriptedServer(full, full, npy_response())
    result = run(server, lambda client: client.sample(2, seed=1), retries=3)
    assert len(server.requests) == 3
    assert result.images.shape == (2, 1, 28, 28)
    assert len(sleeps) == 2


@both_clients
def test_the_wait_honours_retry_after(run, sleeps):
    server = ScriptedServer(error_response(429, "queue_full", retry_after="2"), npy_response())
    run(server, lambda client: client.sample(2), retries=1, backoff=0.5)
    assert len(sleeps) == 1
    assert 2.0 <= sleeps[0] <= 2.5  # never sooner than asked; jitter at most one backoff


@both_clients
def test_without_retry_after_the_backoff_doubles(run, sleeps):
    server = ScriptedServer(*[error_response(503, "not_ready")] * 3, npy_response())
    run(server, lambda client: client.sample(2), retries=3, backoff=1.0, max_backoff=100)
    assert len(sleeps) == 3
    for attempt, waited in enumerate(sleeps):
        assert 2**attempt / 2 <= waited <= 2**attempt


@both_clients
def test_exhausted_retries_raise_overloaded_with_code_message_and_retry_after(run, sleeps):
    server = ScriptedServer(error_response(429, "queue_full", "queue holds 8192 rows", retry_after="1"))
    with pytest.raises(vae_client.Overloaded) as caught:
        run(server, lambda client: client.sample(2), retries=2)
    assert len(server.requests) == 3
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (429, "queue_full", 1.0)
    assert error.message == "queue holds 8192 rows"
    assert "429 queue_full: queue holds 8192 rows" in str(error)


@both_clients
def test_retry_after_beyond_max_backoff_is_raised_at_once(run, sleeps):
    server = ScriptedServer(error_response(503, "shutting_down", retry_after="120"))
    with pytest.raises(vae_client.Unavailable) as caught:
        run(server, lambda client: client.sample(2), retries=5, max_backoff=10)
    assert len(server.requests) == 1
    assert sleeps == []
    assert caught.value.retry_after == 120.0


@both_clients
def test_client_errors_are_not_retried(run, sleeps):
    server = ScriptedServer(error_response(422, "invalid_request", "n must be in 1..1024"))
    with pytest.raises(vae_client.InvalidRequest, match="n must be in 1..1024"):
        run(server, lambda client: client.sample(5000), retries=3)
    assert len(server.requests) == 1


@both_clients
def test_ready_reports_503_as_not_ready_without_retrying(run, sleeps):
    server = ScriptedServer(error_response(503, "not_ready", "models loading"))
    readiness = run(server, lambda client: client.ready(), retries=3)
    assert not readiness
    assert (readiness.code, readiness.message) == ("not_ready", "models loading")
    assert len(server.requests) == 1


@both_clients
def test_client_timeout_is_a_typed_timeout_error(run, sleeps):
    server = ScriptedServer(httpx.ReadTimeout("timed out"))
    with pytest.raises(vae_client.RequestTimeout) as caught:
        run(server, lambda client: client.sample(2), timeout=0.5)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.status is None and "client timeout" in caught.value.message


@both_clients
def test_unreachable_server_is_connection_failed(run, sleeps):
    server = ScriptedServer(httpx.ConnectError("refused"))
    with pytest.raises(vae_client.ConnectionFailed, match="is the service running"):
        run(server, lambda client: client.health())


@both_clients
def test_bulk_data_travels_as_npy(run, sleeps):
    server = ScriptedServer(npy_response(np.zeros((3, 1, 28, 28), np.float32)))
    latents = np.ones((3, 32), np.float64)
    result = run(server, lambda client: client.decode(latents, model="mnist"))
    sent = server.requests[0]
    assert sent.headers["Content-Type"] == "application/x-npy"
    assert sent.url.params["format"] == "npy"
    assert np.load(io.BytesIO(sent.content)).dtype == np.float32
    assert result.latents.shape == (3, 32) and result.model == "mnist" and result.latent_dim == 32


def test_uploads_are_multipart_file_parts_with_names():
    stacked = np.zeros((2, 2, 32), np.float32)
    answer = httpx.Response(200, content=npy_response(stacked).content, headers={"X-Latent-Fields": "mu,logvar"})
    server = ScriptedServer(answer)
    result = run_sync(server, lambda client: client.encode([b"\x89PNG\r\n\x1a\nfake", np.zeros((28, 28), np.uint8)]))
    body = server.requests[0].content
    assert server.requests[0].headers["Content-Type"].startswith("multipart/form-data")
    assert body.count(b'name="file"') == 2
    assert b"Content-Type: image/png" in body
    assert result.mu.shape == (2, 32) and result.z is None and result.filenames == [None, None]


def test_error_codes_map_to_exception_classes():
    expected = {
        (422, "invalid_request"): vae_client.InvalidRequest,
        (422, "invalid_image"): vae_client.InvalidImage,
        (404, "model_not_found"): vae_client.ModelNotFound,
        (404, "not_found"): vae_client.NotFound,
        (405, "method_not_allowed"): vae_client.MethodNotAllowed,
        (413, "payload_too_large"): vae_client.PayloadTooLarge,
        (415, "unsupported_media_type"): vae_client.UnsupportedMediaType,
        (429, "queue_full"): vae_client.Overloaded,
        (503, "not_ready"): vae_client.Unavailable,
        (503, "shutting_down"): vae_client.Unavailable,
        (504, "timeout"): vae_client.ServerTimeout,
        (500, "internal_error"): vae_client.ServerError,
    }
    for (status, code), error_class in expected.items():
        error = error_from_response(error_response(status, code, "why"))
        assert type(error) is error_class, code
        assert (error.status, error.code, error.message) == (status, code, "why")
        assert isinstance(error, vae_client.VAEError)
    assert isinstance(error_from_response(error_response(422, "invalid_image")), vae_client.InvalidRequest)


def test_bodies_outside_the_error_shape_still_map_by_status():
    proxy_page = error_from_response(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert type(proxy_page) is vae_client.ServerError
    assert proxy_page.code == "http_502" and "Bad Gateway" in proxy_page.message
    teapot = error_from_response(error_response(418, "teapot"))
    assert type(teapot) is vae_client.APIError and teapot.code == "teapot"


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_capped_by_max_backoff():
    lowest = RetryPolicy(backoff=0.5, max_backoff=3.0, jitter=lambda: 0.0)
    highest = RetryPolicy(backoff=0.5, max_backoff=3.0, jitter=lambda: 1.0)
    assert [lowest.backoff_delay(attempt) for attempt in range(5)] == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert [highest.backoff_delay(attempt) for attempt in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_negative_retries_are_refused():
    with pytest.raises(ValueError, match="retries"):
        Client("http://vae.test", retries=-1)
