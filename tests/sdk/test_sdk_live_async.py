"""The AsyncClient against the real service: same answers as the blocking client, many in flight."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import vae_client
from vae_client import AsyncClient, Client

LATENT_DIM = 32


def run(coroutine):
    return asyncio.run(coroutine)


def test_every_endpoint_answers_the_async_client(live_server, digit_png):
    async def tour():
        async with AsyncClient(live_server.base_url) as client:
            return (
                await client.sample(2, seed=0),
                await client.encode(digit_png),
                await client.decode(np.zeros((2, LATENT_DIM))),
                await client.reconstruct(digit_png),
                await client.models(),
                await client.model("mnist"),
                await client.health(),
                await client.ready(),
            )

    samples, codes, decoded, reconstruction, listing, mnist, health, readiness = run(tour())
    assert samples.images.shape == (2, 1, 28, 28) and samples.model == "mnist"
    assert codes.mu.shape == (1, LATENT_DIM) and codes.filenames == ["digit.png"]
    assert decoded.images.shape == (2, 1, 28, 28)
    assert reconstruction.images.shape == (1, 1, 28, 28)
    assert listing.default == "mnist" and mnist.latent_dim == LATENT_DIM
    assert health.status == "ok" and readiness


def test_many_concurrent_requests_match_one_at_a_time(live_server):
    seeds = range(24)

    async def fire():
        async with AsyncClient(live_server.base_url) as client:
            return await asyncio.gather(*(client.sample(1, seed=seed) for seed in seeds))

    together = run(fire())
    with Client(live_server.base_url) as client:
        for seed, result in zip(seeds, together, strict=True):
            np.testing.assert_allclose(result.images, client.sample(1, seed=seed).images, atol=1e-5)


def test_a_split_upload_goes_out_concurrently_and_joins_in_order(live_server, digit_png):
    images = [digit_png, np.zeros((28, 28), np.uint8)] * 3

    async def encode():
        async with AsyncClient(live_server.base_url, max_upload_images=2) as client:
            return await client.encode(images)

    parts = run(encode())
    with Client(live_server.base_url) as client:
        whole = client.encode(images)
    np.testing.assert_allclose(parts.mu, whole.mu, atol=1e-5)
    assert parts.filenames == ["digit.png", None] * 3


def test_async_errors_are_typed_like_sync_ones(live_server):
    async def failing(call):
        async with AsyncClient(live_server.base_url) as client:
            return await call(client)

    with pytest.raises(vae_client.ModelNotFound) as caught:
        run(failing(lambda client: client.decode(np.zeros(LATENT_DIM), model="no-such-model")))
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    with pytest.raises(vae_client.InvalidImage):
        run(failing(lambda client: client.reconstruct(b"GIF89a but not really")))
