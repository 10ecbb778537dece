"""The blocking Client against the real service on the shipped models (the `live_server` fixture)."""

from __future__ import annotations

import io
import socket

import httpx
import numpy as np
import pytest
from PIL import Image

import vae_client
from vae_client import Client

LATENT_DIM = 32  # the shipped models' latent size (models/*/model.json)


@pytest.fixture
def client(live_server):
    with Client(live_server.base_url, timeout=30, retries=3) as client:
        yield client


def test_sample_returns_float_images_and_the_model_that_made_them(client):
    result = client.sample(4, seed=0)
    assert isinstance(result, vae_client.SampleResult)
    assert result.images.shape == (4, 1, 28, 28) and result.images.dtype == np.float32
    assert 0.0 <= result.images.min() and result.images.max() <= 1.0
    assert (result.model, result.latent_dim, result.seed) == ("mnist", LATENT_DIM, 0)


def test_the_same_seed_gives_the_same_images(client):
    first, again, other = client.sample(3, seed=11), client.sample(3, seed=11), client.sample(3, seed=12)
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)


def test_temperature_and_model_reach_the_server(client):
    fashion = client.sample(2, seed=0, temperature=0.5, model="fashion-mnist")
    assert fashion.model == "fashion-mnist"
    assert not np.array_equal(fashion.images, client.sample(2, seed=0, temperature=0.5).images)


def test_save_grid_matches_the_services_png_grid(client, live_server, tmp_path):
    ours = np.asarray(Image.open(client.sample(5, seed=3).save_grid(tmp_path / "grid.png")))
    png = httpx.post(f"{live_server.base_url}/sample", params={"n": 5, "seed": 3, "format": "png"}, timeout=30)
    theirs = np.asarray(Image.open(io.BytesIO(png.content)))
    assert ours.shape == theirs.shape == (58, 88)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1  # rounding of the 8-bit conversion


def test_encode_takes_paths_bytes_pil_images_and_arrays_at_once(client, digit_png):
    pixels = np.asarray(Image.open(digit_png))
    forms = [digit_png, str(digit_png), digit_png.read_bytes(), Image.open(digit_png), pixels, pixels / 255.0]
    result = client.encode(forms)
    assert isinstance(result, vae_client.EncodeResult)
    assert result.mu.shape == result.logvar.shape == (6, LATENT_DIM) and result.z is None
    assert result.filenames == ["digit.png", "digit.png", None, None, None, None]
    for row in result.mu[1:]:  # every form of the same picture reaches the model as the same pixels
        np.testing.assert_allclose(row, result.mu[0], atol=1e-5)


def test_encode_with_sample_draws_a_repeatable_z(client, digit_png):
    first = client.encode(digit_png, sample=True, seed=5)
    again = client.encode(digit_png, sample=True, seed=5)
    assert first.z.shape == (1, LATENT_DIM)
    np.testing.assert_array_equal(first.z, again.z)
    assert first.latents is first.z


def test_result_images_go_straight_back_into_encode(client):
    samples = client.sample(3, seed=1)
    assert len(client.encode(samples.images, normalize=False)) == 3


def test_reconstruct_decodes_the_posterior_mean(client, digit_png):
    reconstruction = client.reconstruct([digit_png, digit_png])
    assert isinstance(reconstruction, vae_client.ReconstructResult)
    assert reconstruction.images.shape == (2, 1, 28, 28)
    assert reconstruction.filenames == ["digit.png", "digit.png"]
    decoded = client.decode(client.encode(digit_png).mu)
    np.testing.assert_allclose(decoded.images[0], reconstruction.images[0], atol=1e-5)


def test_decode_takes_one_vector_or_a_batch(client):
    single = client.decode(np.zeros(LATENT_DIM))
    assert single.images.shape == (1, 1, 28, 28) and single.latents.shape == (1, LATENT_DIM)
    batch = client.decode(np.random.default_rng(0).standard_normal((5, LATENT_DIM)))
    assert batch.images.shape == (5, 1, 28, 28) and batch.model == "mnist"


def test_uploads_beyond_the_per_request_limit_are_split_and_joined(live_server, digit_png):
    images = [digit_png] * 5
    with Client(live_server.base_url, max_upload_images=2) as split:
        parts = split.encode(images)
        reconstructed = split.reconstruct(images)
    with Client(live_server.base_url) as whole:
        np.testing.assert_allclose(parts.mu, whole.encode(images).mu, atol=1e-5)
    assert len(parts) == 5 and len(reconstructed) == 5 and parts.filenames == ["digit.png"] * 5


def test_models_health_and_ready(client):
    listing = client.models()
    assert listing.default == "mnist" and "mnist" in listing.names
    mnist = client.model("mnist")
    assert mnist.latent_dim == LATENT_DIM and mnist.dataset == "mnist"
    assert mnist.provider in {"CPUExecutionProvider", "CUDAExecutionProvider"}
    assert listing["mnist"].card == mnist.card
    assert client.health().status == "ok"
    readiness = client.ready()
    assert readiness and "mnist" in readiness.models


def test_unknown_model_is_model_not_found(client):
    with pytest.raises(vae_client.ModelNotFound) as caught:
        client.sample(1, model="no-such-model")
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    assert "no-such-model" in caught.value.message and "mnist" in caught.value.message
    with pytest.raises(vae_client.ModelNotFound):
        client.model("no-such-model")


def test_out_of_range_parameters_are_invalid_request(client):
    with pytest.raises(vae_client.InvalidRequest) as caught:
        client.sample(0)
    assert (caught.value.status, caught.value.code) == (422, "invalid_request")
    with pytest.raises(vae_client.InvalidRequest, match="temperature"):
        client.sample(1, temperature=-1.0)


def test_wrong_latent_size_names_the_expected_size(client):
    with pytest.raises(vae_client.InvalidRequest, match=str(LATENT_DIM)):
        client.decode(np.zeros((2, LATENT_DIM + 1)))


def test_bytes_that_are_no_image_are_invalid_image(client):
    with pytest.raises(vae_client.InvalidImage) as caught:
        client.encode(b"definitely not an image")
    assert (caught.value.status, caught.value.code) == (422, "invalid_image")


def test_too_many_images_in_one_request_is_payload_too_large(live_server):
    tiny = np.zeros((28, 28), np.uint8)
    with Client(live_server.base_url, max_upload_images=10_000) as client:
        limit = 64  # the service's default VAE_MAX_UPLOAD_IMAGES
        with pytest.raises(vae_client.PayloadTooLarge) as caught:
            client.encode([tiny] * (limit + 1))
    assert (caught.value.status, caught.value.code) == (413, "payload_too_large")


def test_an_unreachable_server_is_connection_failed():
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with Client(url, timeout=5) as client, pytest.raises(vae_client.ConnectionFailed) as caught:
        client.health()
    assert caught.value.status is None and url in caught.value.message
