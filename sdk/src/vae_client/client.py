"""The blocking client. Every request is built and read in `_endpoints`; this module sends."""

from __future__ import annotations

import itertools
import time
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


class Client(ClientBase):
    """Blocking client with a pooled connection; use it as a context manager.

        with Client("http://localhost:8000") as vae:
            vae.sample(16, seed=0).save_grid("grid.png")

    See `ClientBase` for the constructor arguments (timeout, retries, ...).
    """

    _http_class = httpx.Client

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def _execute(self, call: Call[T]) -> T:
        for attempt in itertools.count():
            response = self._send(call)
            delay = call.retry_delay(self.retry_policy, attempt, response)
            if delay is None:
                return call.result(response)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _execute_plan(self, plan: Plan[R, T]) -> T:
        return plan.merge([self._execute(call) for call in plan.calls])

    def _send(self, call: Call[Any]) -> httpx.Response:
        try:
            return self._http.request(**call.request_options())
        except httpx.TransportError as exc:
            raise error_from_exception(exc, self.base_url) from exc

    def sample(
        self,
        n: int = 16,
        seed: int | None = None,
        temperature: float = 1.0,
        model: str | None = None,
        *,
        prior: str | None = None,
        label: str | int | None = None,
    ) -> SampleResult:
        """Draw `n` images from the prior; the same seed gives the same images.

        `prior`: "standard", z ~ N(0, temperature^2 I), or "mixture", the mixture stored with the
        model (its spread scaled by `temperature`); default the model card's `prior.default`.
        `label`: a class name from the model's `labels` or its index (str or int, sent as given):
        draw from that class's stored prior. A model without a stored mixture or classes, or an
        unknown label, is `InvalidRequest` (its `details` list the `labels` or `allowed` priors).
        """
        return self._execute(endpoints.sample(n, seed, temperature, model, prior, label))

    def encode(
        self,
        images: Any,
        *,
        model: str | None = None,
        normalize: bool = True,
        sample: bool = False,
        seed: int | None = None,
    ) -> EncodeResult:
        """Posterior mu and logvar (and z when `sample`) of one or many images in one request.

        `images`: a path, bytes, PIL image, array (grayscale [H, W] or [N, H, W]; colour
        [H, W, 3]; the model layout [N, C, H, W] that results hold; uint8 or float in [0, 1]) or
        a list of these; colour or grayscale, the service converts them to the model's input.
        `normalize=False` skips the dataset-style preprocessing (only conversion to the model's
        channels and a resize to its image size). Arrays `mu`, `logvar`, `z` are
        [N, *latent_shape]. More than `max_upload_images` images are sent as several requests
        (request k seeded with seed + k) and the results joined in order.
        """
        return self._execute_plan(endpoints.encode(images, model, normalize, sample, seed, self.max_upload_images))

    def decode(self, latents: Any, *, model: str | None = None) -> DecodeResult:
        """Images [N, C, H, W] from latents shaped [N, *latent_shape] or one latent without N.

        `latents`: an array or nested lists, e.g. [N, D] or [D] for a flat latent, [N, C', h, w]
        or [C', h, w] for a spatial one (also as flat [N, D] vectors where the model allows it),
        such as `encode(...).mu`. Sent as float32 `.npy`; a wrong shape is `InvalidRequest`
        naming the expected one.
        """
        return self._execute(endpoints.decode(latents, model))

    def reconstruct(
        self,
        images: Any,
        *,
        model: str | None = None,
        normalize: bool = True,
        sample: bool = False,
        seed: int | None = None,
    ) -> ReconstructResult:
        """Encode and decode images (decoding mu, or a sample when `sample`); inputs as for `encode`."""
        return self._execute_plan(endpoints.reconstruct(images, model, normalize, sample, seed, self.max_upload_images))

    def interpolate(
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
        return self._execute(endpoints.interpolate(a, b, steps, method, temperature, normalize, model))

    def traverse(
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
        return self._execute(endpoints.traverse(start, dims, count, steps, span, seed, normalize, model))

    def score(
        self,
        images: Any,
        *,
        k: int = 64,
        seed: int = 0,
        normalize: bool = True,
        model: str | None = None,
    ) -> ScoreResult:
        """How likely each image is under the model: -ELBO, its reconstruction and KL terms, the
        NLL from `k` importance samples (also in bits/dim), and where the model has a test-set
        table its percentile and outlier flag. Same `seed`, same scores.

        `images` as for `encode` (paths, bytes, PIL images, arrays, or a list): arrays go up as
        PNG uploads like `encode`'s, so float pixels are rounded to 8 bits, and
        `normalize=False` skips the dataset-style preprocessing. More than `max_upload_images`
        images are sent as several requests, all with the same seed (the service shares one set
        of importance samples among a request's images, so an image scores the same in any of
        them), and the results joined in order. `k` above the service's VAE_MAX_SCORE_K, or
        k x images per request above VAE_MAX_SCORE_ROWS, is `InvalidRequest`.
        """
        return self._execute_plan(endpoints.score(images, k, seed, normalize, model, self.max_upload_images))

    def models(self) -> ModelList:
        """Every served model and the default one."""
        return self._execute(endpoints.models())

    def model(self, name: str) -> ModelInfo:
        """One model's card and graph signatures; `ModelNotFound` if it is not served."""
        return self._execute(endpoints.model(name))

    def health(self) -> Health:
        """Liveness: answers while the process is up."""
        return self._execute(endpoints.health())

    def ready(self) -> Readiness:
        """Readiness, asked once; falsy (not an exception) while models load or on shutdown."""
        return self._execute(endpoints.ready())

    def wait_until_ready(self, timeout: float = 30.0, interval: float = 0.25) -> Readiness:
        """Poll `/ready` until it says ready; raises `Unavailable` after `timeout` seconds."""
        poll = ReadyPoll(self.base_url, timeout, interval)
        while not poll.ready(self._probe_ready()):
            time.sleep(poll.next_delay())
        return poll.readiness

    def _probe_ready(self) -> Readiness | ConnectionFailed:
        try:
            return self.ready()
        except ConnectionFailed as exc:  # not up yet: keep asking until the deadline
            return exc
