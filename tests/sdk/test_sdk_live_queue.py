"""Retry on 429, batching of concurrent requests, and client timeouts, against a real service
whose queue holds one full request and makes rows wait VAE_MAX_QUEUE_DELAY_MS for a batch."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import vae_client
from vae_client import AsyncClient, Client


def queue_rows(server) -> int:
    """Rows one request needs to fill the small queue (see small_queue_server)."""
    return int(server.env["VAE_MAX_QUEUE_ROWS"])


class StatusRecorder(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """A real HTTP transport that also notes every status code the client received."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self._sync = httpx.HTTPTransport()
        self._async = httpx.AsyncHTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._sync.handle_request(request)
        self.statuses.append(response.status_code)
        return response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._async.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.aclose()


async def _sample_concurrently(server, requests: int, retries: int, transport=None) -> list:
    async with AsyncClient(server.base_url, retries=retries, transport=transport) as client:
        calls = (client.sample(queue_rows(server), seed=seed) for seed in range(requests))
        return await asyncio.gather(*calls, return_exceptions=True)


def test_without_retries_a_full_queue_raises_overloaded_with_retry_after(small_queue_server):
    outcomes = asyncio.run(_sample_concurrently(small_queue_server, requests=3, retries=0))
    rejected = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert rejected and len(rejected) < len(outcomes), outcomes
    for error in rejected:
        assert isinstance(error, vae_client.Overloaded), error
        assert (error.status, error.code) == (429, "queue_full")
        assert error.retry_after is not None and error.retry_after >= 1
        assert "queue" in error.message


def test_async_client_retries_429_until_every_request_is_served(small_queue_server):
    recorder = StatusRecorder()
    outcomes = asyncio.run(_sample_concurrently(small_queue_server, requests=3, retries=8, transport=recorder))
    assert all(isinstance(outcome, vae_client.SampleResult) for outcome in outcomes), outcomes
    assert 429 in recorder.statuses and recorder.statuses.count(200) == 3


def test_sync_client_retries_429_from_several_threads(small_queue_server):
    recorder = StatusRecorder()
    full = queue_rows(small_queue_server)
    with Client(small_queue_server.base_url, retries=8, transport=recorder) as client:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda seed: client.sample(full, seed=seed), range(3)))
    assert [len(result) for result in results] == [full] * 3
    assert 429 in recorder.statuses and recorder.statuses.count(200) == 3


def _decoder_batches(base_url: str) -> tuple[float, float]:
    """(batches, rows) the mnist decoder has run, from /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text

    def value(name: str) -> float:
        match = re.search(rf'^{name}\{{graph="decoder",model="mnist"\}} (\S+)$', text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    return value("vae_batch_size_rows_count"), value("vae_batch_size_rows_sum")


def test_concurrent_async_requests_are_batched_by_the_server(small_queue_server):
    requests = queue_rows(small_queue_server)  # one row each: together they exactly fill the queue

    async def fire():
        async with AsyncClient(small_queue_server.base_url, retries=8) as client:
            return await asyncio.gather(*(client.sample(1, seed=seed) for seed in range(requests)))

    batches_before, rows_before = _decoder_batches(small_queue_server.base_url)
    results = asyncio.run(fire())
    batches_after, rows_after = _decoder_batches(small_queue_server.base_url)
    assert len(results) == requests
    assert rows_after - rows_before == requests
    assert batches_after - batches_before <= requests / 2  # many requests per onnxruntime call


def test_a_client_timeout_shorter_than_the_queue_delay_raises_request_timeout(small_queue_server):
    queue_delay_s = float(small_queue_server.env["VAE_MAX_QUEUE_DELAY_MS"]) / 1000
    with Client(small_queue_server.base_url, timeout=queue_delay_s / 4, retries=0) as client:
        with pytest.raises(vae_client.RequestTimeout) as caught:
            client.sample(1)
    assert isinstance(caught.value, TimeoutError) and caught.value.status is None
