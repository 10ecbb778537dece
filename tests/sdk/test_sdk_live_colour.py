"""Client and AsyncClient against the real service on a tiny RGB model with a spatial latent
(the `colour_server` fixture: 3x12x16 images, a [2, 3, 4] latent): every result takes its
shapes from the model, none from MNIST."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from PIL import Image

import vae_client
from vae_client import AsyncClient, Client

# What colour_server's model "rgb" is (conftest.COLOUR_MODEL).
IMAGE_SHAPE = (3, 12, 16)
LATENT_SHAPE = (2, 3, 4)
LABELS = ["cat", "dog"]


def run_sync(server, call: Callable) -> object:
    with Client(server.base_url, timeout=30, retries=3) as client:
        return call(client)


def run_async(server, call: Callable) -> object:
    async def main() -> object:
        async with AsyncClient(server.base_url, timeout=30, retries=3) as client:
            return await call(client)

    return asyncio.run(main())


both_clients = pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])


def decode_directly(server, latents: np.ndarray) -> np.ndarray:
    """POST /decode with the .npy body by hand: what the SDK's answer must equal."""
    buffer = io.BytesIO()
    np.save(buffer, latents.astype(np.float32))
    answer = httpx.post(
        f"{server.base_url}/decode",
        params={"format": "npy"},
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return np.load(io.BytesIO(answer.content))


@both_clients
def test_sample_gives_colour_images_in_the_models_shape(run, colour_server):
    result = run(colour_server, lambda client: client.sample(5, seed=0))
    assert result.images.shape == (5, *IMAGE_SHAPE) and result.images.dtype == np.float32
    assert 0.0 <= result.images.min() and result.images.max() <= 1.0
    assert (result.model, result.latent_shape, result.latent_dim) == ("rgb", LATENT_SHAPE, 24)


def test_save_grid_writes_the_services_rgb_grid_and_to_pil_gives_rgb_images(colour_server, tmp_path):
    samples = run_sync(colour_server, lambda client: client.sample(5, seed=3))
    ours = Image.open(samples.save_grid(tmp_path / "grid.png"))
    png = httpx.post(f"{colour_server.base_url}/sample", params={"n": 5, "seed": 3, "format": "png"}, timeout=30)
    theirs = Image.open(io.BytesIO(png.content))
    assert ours.mode == theirs.mode == "RGB" and ours.size == theirs.size == (3 * 16 + 2 * 2, 2 * 12 + 2)
    assert np.abs(np.asarray(ours, int) - np.asarray(theirs, int)).max() <= 1  # 8-bit rounding
    assert [(image.mode, image.size) for image in samples.to_pil()] == [("RGB", (16, 12))] * 5


@both_clients
def test_encoding_a_colour_png_gives_posteriors_in_the_latent_shape(run, colour_server, colour_png):
    codes = run(colour_server, lambda client: client.encode(colour_png))
    assert codes.mu.shape == codes.logvar.shape == (1, *LATENT_SHAPE) and codes.z is None
    assert (codes.model, codes.latent_shape, codes.filenames) == ("rgb", LATENT_SHAPE, ["photo.png"])
    drawn = run(colour_server, lambda client: client.encode([colour_png] * 2, sample=True, seed=4))
    assert drawn.z.shape == (2, *LATENT_SHAPE) and drawn.latents is drawn.z


@both_clients
def test_decoding_mu_round_trips_and_equals_decode_called_directly(run, colour_server, colour_png):
    mu = run(colour_server, lambda client: client.encode(colour_png)).mu
    decoded = run(colour_server, lambda client: client.decode(mu))
    assert decoded.images.shape == (1, *IMAGE_SHAPE) and decoded.latents.shape == (1, *LATENT_SHAPE)
    np.testing.assert_array_equal(decoded.images, decode_directly(colour_server, mu))
    for form in (mu[0], mu.reshape(1, -1), mu.tolist()):  # one latent, flat vectors, nested lists
        again = run(colour_server, lambda client, form=form: client.decode(form))
        np.testing.assert_array_equal(again.images, decoded.images)
        assert again.latents.shape == (1, *LATENT_SHAPE)


@both_clients
def test_reconstruct_decodes_the_posterior_mean_of_colour_and_grayscale_uploads(
    run, colour_server, colour_png, digit_png
):
    uploads = [colour_png, digit_png]
    reconstruction = run(colour_server, lambda client: client.reconstruct(uploads))
    assert reconstruction.images.shape == (2, *IMAGE_SHAPE) and reconstruction.latent_shape == LATENT_SHAPE
    assert reconstruction.filenames == ["photo.png", "digit.png"]
    mu = run(colour_server, lambda client: client.encode(uploads)).mu
    np.testing.assert_allclose(reconstruction.images, decode_directly(colour_server, mu), atol=1e-6)


def test_colour_result_images_go_straight_back_into_encode(colour_server):
    with Client(colour_server.base_url) as client:
        samples = client.sample(3, seed=1)
        codes = client.encode(samples.images, normalize=False)
        from_pil = client.encode(samples.to_pil(), normalize=False)
    assert codes.mu.shape == (3, *LATENT_SHAPE)
    np.testing.assert_allclose(codes.mu, from_pil.mu, atol=1e-6)  # the array went up as the same RGB pixels


@both_clients
def test_models_show_the_cards_image_and_latent_shapes_labels_and_limits(run, colour_server):
    listing = run(colour_server, lambda client: client.models())
    info = run(colour_server, lambda client: client.model("rgb"))
    assert listing.default == "rgb" and listing["rgb"] == info
    assert (info.image_shape, info.latent_shape, info.latent_dim, info.channels) == (IMAGE_SHAPE, LATENT_SHAPE, 24, 3)
    assert info.labels == LABELS
    assert info.limits is not None and info.limits.max_upload_images >= 1 and info.limits.max_sample_n >= 1


@both_clients
def test_a_latent_of_another_shape_is_invalid_request_naming_the_expected_one(run, colour_server):
    with pytest.raises(vae_client.InvalidRequest, match=r"\[N, 2, 3, 4\]"):
        run(colour_server, lambda client: client.decode(np.zeros((1, 5))))
