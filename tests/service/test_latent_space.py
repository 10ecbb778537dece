"""POST /interpolate and POST /traverse, in-process on the shipped models: endpoints of each kind,
exact endpoints, formats, the most active dimensions first, and their limits."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from devtools.images import digit_png_bytes
from service.inference import interpolation


def npy(content: bytes) -> np.ndarray:
    return np.load(io.BytesIO(content), allow_pickle=False)


def sample_latent(client, seed: int) -> list[float]:
    return client.post("/sample", params={"n": 1, "seed": seed, "format": "json"}).json()["latents"][0]


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_endpoints_decode_exactly_as_decode_and_sample_would(app_client, method):
    walk = app_client.post("/interpolate", params={"seeds": "3,9", "steps": 5, "method": method, "format": "npy"})
    assert walk.status_code == 200, walk.text
    frames = npy(walk.content)
    first = npy(app_client.post("/sample", params={"n": 1, "seed": 3, "format": "npy"}).content)
    last = npy(app_client.post("/sample", params={"n": 1, "seed": 9, "format": "npy"}).content)
    assert frames.shape == (5, 1, 28, 28)
    assert np.array_equal(frames[0], first[0]) and np.array_equal(frames[-1], last[0])


def test_latent_endpoints_from_json_and_image_endpoints_from_uploads(app_client):
    a, b = sample_latent(app_client, 1), sample_latent(app_client, 2)
    body = app_client.post("/interpolate", params={"steps": 3, "format": "json"}, json={"latents": [a, b]}).json()
    assert body["endpoints"] == "latents" and np.allclose(
        body["latents"][1], (np.array(a) + np.array(b)) / 2, atol=1e-6
    )
    files = [("file", ("a.png", digit_png_bytes(0))), ("file", ("b.png", digit_png_bytes(1)))]
    mu = npy(app_client.post("/encode", params={"format": "npy"}, files=files).content)[:, 0]
    walk = app_client.post("/interpolate", params={"steps": 4, "format": "json"}, files=files).json()
    assert walk["endpoints"] == "images"
    assert np.array_equal(np.float32(walk["latents"][0]), mu[0]) and np.array_equal(
        np.float32(walk["latents"][-1]), mu[1]
    )


def test_interpolation_formats_a_png_row_and_animations(app_client):
    row = Image.open(io.BytesIO(app_client.post("/interpolate", params={"seeds": "1,2", "steps": 6}).content))
    assert row.size == (6 * 28 + 5 * 2, 28)
    for fmt, frames in (("gif", 10), ("webp", 10)):  # forward then back: 6 + 4 frames
        answer = app_client.post("/interpolate", params={"seeds": "1,2", "steps": 6, "format": fmt})
        assert answer.headers["content-type"] == f"image/{fmt}"
        animation = Image.open(io.BytesIO(answer.content))
        assert animation.format == fmt.upper() and animation.n_frames == frames


def test_slerp_keeps_the_norm_between_the_endpoints():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(32).astype(np.float32), rng.standard_normal(32).astype(np.float32)
    walk = interpolation(a, b, 9, "slerp")
    norms = np.linalg.norm(walk, axis=1)
    assert np.allclose(norms, np.linspace(np.linalg.norm(a), np.linalg.norm(b), 9), rtol=1e-5)
    linear = interpolation(a, b, 9, "linear")
    assert np.linalg.norm(linear[4]) < norms[4]  # the straight line cuts through the middle of the sphere


@pytest.mark.parametrize(
    "params, kwargs, words",
    [
        ({"steps": 65, "seeds": "1,2"}, {}, ["'steps'", "2..64"]),
        ({"steps": 1, "seeds": "1,2"}, {}, ["'steps'"]),
        ({"seeds": "1"}, {}, ["'seeds'"]),
        ({}, {}, ["no endpoints"]),
        ({"seeds": "1,2"}, {"json": {"latents": [[0.0] * 32, [0.0] * 32]}}, ["one way"]),
        ({}, {"json": {"latents": [[0.0] * 32]}}, ["1 latents", "two endpoints"]),
        ({}, {"files": [("file", ("a.png", digit_png_bytes(0)))]}, ["1 images", "exactly 2"]),
        ({"method": "cubic", "seeds": "1,2"}, {}, ["'method'"]),
    ],
)
def test_interpolate_refuses_what_it_cannot_walk(app_client, params, kwargs, words):
    answer = app_client.post("/interpolate", params=params, **kwargs)
    assert answer.status_code == 422, answer.text
    for word in words:
        assert word in answer.json()["error"]["message"]


def test_traverse_sweeps_the_most_active_dimensions_first_one_row_each(app_client):
    answer = app_client.post("/traverse", params={"count": 3, "steps": 5, "span": 2.5, "format": "json"})
    body = answer.json()
    assert len(body["dims"]) == 3 and body["values"] == pytest.approx(list(np.linspace(-2.5, 2.5, 5)))
    latents = np.array(body["latents"])
    assert latents.shape == (3, 5, 32)
    for row, dim in enumerate(body["dims"]):
        others = np.delete(latents[row], dim, axis=1)
        assert np.all(others == 0) and latents[row, :, dim] == pytest.approx(body["values"])
    grid = Image.open(io.BytesIO(app_client.post("/traverse", params={"count": 3, "steps": 5}).content))
    assert grid.size == (5 * 28 + 4 * 2, 3 * 28 + 2 * 2)
    stacked = npy(app_client.post("/traverse", params={"dims": "0,7", "steps": 4, "format": "npy"}).content)
    assert stacked.shape == (2, 4, 1, 28, 28)


def test_traverse_starts_from_an_upload_or_a_seed(app_client):
    mu = npy(
        app_client.post("/encode", params={"format": "npy"}, files={"file": ("d.png", digit_png_bytes(4))}).content
    )[0, 0]
    body = app_client.post(
        "/traverse", params={"dims": "5", "steps": 3, "format": "json"}, files={"file": ("d.png", digit_png_bytes(4))}
    ).json()
    start = np.float32(body["latents"][0][0])
    assert np.array_equal(np.delete(start, 5), np.delete(mu, 5))
    seeded = app_client.post("/traverse", params={"dims": "5", "steps": 3, "seed": 11, "format": "json"}).json()
    assert np.allclose(np.delete(seeded["latents"][0][0], 5), np.delete(sample_latent(app_client, 11), 5))


def test_traverse_limits(app_client):
    assert "0..31" in app_client.post("/traverse", params={"dims": "32"}).json()["error"]["message"]
    assert app_client.post("/traverse", params={"dims": "0,1", "steps": 65}).status_code == 422
    assert app_client.post("/traverse", params={"bogus": 1}).status_code == 422
    assert json.loads(app_client.post("/traverse", params={"count": 2, "steps": 2, "format": "json"}).content)["dims"]
