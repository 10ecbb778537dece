"""The asyncio client: the same calls as `Client`, awaited.

Requests are independent, so `asyncio.gather` over many calls puts them in flight together
(up to `max_connections`) and the service's batcher merges them into model batches.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, TypeVar

import httpx

from . import _endpoints as endpoints
from ._base import ClientBase
from ._transport import Call, Plan, ReadyPoll, error_from_exception
from .errors import ConnectionFailed
from .models import (
    DecodeResult,
    EncodeResult,
    Health,
    ModelInfo,
    ModelList,
    Readiness,
    ReconstructResult,
    SampleResult,
    ScoreResult,
    TraverseResult,
    WalkResult,
)

T = TypeVar("T")
R = TypeVar("R")


class AsyncClient(ClientBase):
    """Asyncio client with a pooled connection; use it as an async context manager.

        async with AsyncClient("http://localhost:8000") as vae:
            results = await asyncio.gather(*(vae.sample(1, seed=s) for s in range(64)))

    Methods and arguments are those of `Client`; see there for details.
    """

    _http_class = httpx.AsyncClient

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def _execute(self, call: Call[T]) -> T:
        for attempt in itertools.count():
            response = await self._send(call)
            delay = call.retry_delay(self.retry_policy, attempt, response)
            if delay is None:
                return call.result(response)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _execute_plan(self, plan: Plan[R, T]) -> T:
        # The parts of a split upload go out together; the server batches them.
        return plan.merge(list(await asyncio.gather(*(self._execute(call) for call in plan.calls))))

    async def _send(self, call: Call[Any]) -> httpx.Response:
        try:
            return await self._http.request(**call.request_options())
        except httpx.TransportError as exc:
            raise error_from_exception(exc, self.base_url) from exc

    async def sample(
        self,
        n: int = 16,
        seed: int | None = None,
        temperature: float = 1.0,
        model: str | None = None,
        *,
        prior: str | None = None,
        label: str | int | None = None,
    ) -> SampleResult:
        """See `Client.sample`."""
        return await self._execute(endpoints.sample(n, seed, temperature, model, prior, label))

    async def encode(
        self,
        images: Any,
        *,
        model: str | None = None,
        normalize: bool = True,
        sample: bool = False,
        seed: int | None = None,
    ) -> EncodeResult:
        """See `Client.encode`."""
        return await self._execute_plan(
            endpoints.encode(images, model, normalize, sample, seed, self.max_upload_images)
        )

    async def decode(self, latents: Any, *, model: str | None = None) -> DecodeResult:
        """See `Client.decode`."""
        return await self._execute(endpoints.decode(latents, model))

    async def reconstruct(
        self,
        images: Any,
        *,
        model: str | None = None,
        normalize: bool = True,
        sample: bool = False,
        seed: int | None = None,
    ) -> ReconstructResult:
        """See `Client.reconstruct`."""
        return await self._execute_plan(
            endpoints.reconstruct(images, model, normalize, sample, seed, self.max_upload_images)
        )

    async def interpolate(
        self,
        a: Any,
        b: Any,
        *,
        steps: int = 8,
        method: str = "linear",
        temperature: float = 1.0,
        normalize: bool = True,
        model: str | None = None,
    ) -> WalkResult:
        """A walk of `steps` decoded frames from `a` to `b`, both included: two seeds (ints, the
        latents `sample(1, seed=...)` draws), two latents (arrays or lists) or two images (paths,
        bytes, PIL images; their mu). `method`: "linear" or "slerp". `save_animation()` writes a GIF."""
        return await self._execute(endpoints.interpolate(a, b, steps, method, temperature, normalize, model))

    async def traverse(
        self,
        start: Any = None,
        *,
        dims: list[int] | None = None,
        count: int = 8,
        steps: int = 7,
        span: float = 3.0,
        seed: int | None = None,
        normalize: bool = True,
        model: str | None = None,
    ) -> TraverseResult:
        """Sweep latent dimensions one at a time over [-span, span] from an image's mu (`start`), a
        seed's latent, or the origin: `dims`, or the `count` most active. Images [dims * steps, C, H, W]."""
        return await self._execute(endpoints.traverse(start, dims, count, steps, span, seed, normalize, model))

    async def score(
        self,
        images: Any,
        *,
        k: int = 64,
        seed: int = 0,
        normalize: bool = True,
        model: str | None = None,
    ) -> ScoreResult:
        """See `Client.score`."""
        return await self._execute_plan(endpoints.score(images, k, seed, normalize, model, self.max_upload_images))

    async def models(self) -> ModelList:
        """See `Client.models`."""
        return await self._execute(endpoints.models())

    async def model(self, name: str) -> ModelInfo:
        """See `Client.model`."""
        return await self._execute(endpoints.model(name))

    async def health(self) -> Health:
        """See `Client.health`."""
        return await self._execute(endpoints.health())

    async def ready(self) -> Readiness:
        """See `Client.ready`."""
        return await self._execute(endpoints.ready())

    async def wait_until_ready(self, timeout: float = 30.0, interval: float = 0.25) -> Readiness:
        """See `Client.wait_until_ready`."""
        poll = ReadyPoll(self.base_url, timeout, interval)
        while not poll.ready(await self._probe_ready()):
            await asyncio.sleep(poll.next_delay())
        return poll.readiness

    async def _probe_ready(self) -> Readiness | ConnectionFailed:
        try:
            return await self.ready()
        except ConnectionFailed as exc:  # not up yet: keep asking until the deadline
            return exc
