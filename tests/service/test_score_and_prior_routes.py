"""POST /score and /sample's priors against the real service on the shipped models: the figures
training computed for the test set, determinism under concurrent load, the limits and bad input."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import pytest

from devtools.images import image_bytes
from devtools.live import MODELS_DIR
from training.data import load_dataset
from training.scores import FolderModel


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy(content: bytes) -> np.ndarray:
    return np.load(io.BytesIO(content), allow_pickle=False)


@pytest.fixture(scope="module")
def test_images():
    return load_dataset("mnist").test.images[:8], load_dataset("fashion-mnist").test.images[:8]


def uploads(images: np.ndarray, prefix: str = "x") -> list:
    return [("file", (f"{prefix}{i}.png", image_bytes(image))) for i, image in enumerate(images)]


def test_scores_are_the_figures_training_computes_for_the_same_images(live_server, test_images):
    digits, _ = test_images
    with live_server.client() as http:
        answer = http.post("/score", params={"normalize": "false", "k": 16, "seed": 3}, files=uploads(digits))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = FolderModel(MODELS_DIR / "mnist", threads=1).scores(digits[:, None] / np.float32(255), 16, 3)
    served = np.array([[r["neg_elbo"], r["reconstruction"], r["kl"], r["nll"]] for r in body["results"]])
    np.testing.assert_allclose(served, expected, rtol=1e-6)
    assert body["k"] == 16 and body["seed"] == 3 and body["prior"] == body["table"]["prior"]
    for result in body["results"]:
        assert result["nll"] <= result["neg_elbo"] + 1.0 and result["kl"] > 0
        assert 0 <= result["percentile"] <= 100 and 0 <= result["outlier_score"] <= 100
        assert result["bits_per_dim"] == pytest.approx(result["nll"] / (784 * np.log(2)))


def test_the_outlier_flag_works_in_both_directions(live_server, test_images):
    digits, clothes = test_images
    with live_server.client() as http:
        for model, own, other in (("mnist", digits, clothes), ("fashion-mnist", clothes, digits)):
            params = {"model": model, "normalize": "false"}
            inside = http.post("/score", params=params, files=uploads(own)).json()["results"]
            outside = http.post("/score", params=params, files=uploads(other)).json()["results"]
            # These 16 images rank perfectly: every one from elsewhere is further out than any own one.
            assert min(r["outlier_score"] for r in outside) > max(r["outlier_score"] for r in inside), model
            assert not any(r["outlier"] for r in inside)
        # The MNIST model flags all of them (the card's flagged_share: 99.98 %, against 50 % the other way).
        flagged = http.post("/score", params={"normalize": "false"}, files=uploads(clothes)).json()["results"]
        assert all(r["outlier"] for r in flagged)


def test_an_image_scores_the_same_whatever_it_is_batched_with(live_server, test_images):
    digits, clothes = test_images
    target = uploads(digits[:1], "target")

    async def one(http: httpx.AsyncClient, files) -> dict:
        answer = await http.post("/score", params={"k": 32, "seed": 11}, files=files)
        assert answer.status_code == 200, answer.text
        return answer.json()["results"][0]

    async def load() -> list[dict]:
        async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as http:
            mixes = [target + uploads(clothes[: i % 4], "c") + uploads(digits[1 : 1 + i % 3], "d") for i in range(24)]
            return await asyncio.gather(*(one(http, files) for files in mixes))

    results = asyncio.run(load())
    assert all(r == results[0] for r in results[1:])


def test_a_npy_batch_of_model_inputs_scores_like_the_same_pixels_uploaded(live_server, test_images):
    digits, _ = test_images
    inputs = (digits[:3, None] / np.float32(255)).astype(np.float32)
    with live_server.client() as http:
        from_npy = http.post("/score", content=npy_bytes(inputs), headers={"content-type": "application/x-npy"})
        from_png = http.post("/score", params={"normalize": "false"}, files=uploads(digits[:3]))
    assert from_npy.status_code == 200, from_npy.text
    strip = [{k: v for k, v in r.items() if k != "filename"} for r in from_png.json()["results"]]
    assert [{k: v for k, v in r.items() if k != "filename"} for r in from_npy.json()["results"]] == strip


def test_a_model_without_a_table_scores_without_percentiles(live_server):
    image = (np.random.default_rng(0).random((1, 3, 64, 64))).astype(np.float32)
    with live_server.client() as http:
        answer = http.post(
            "/score", params={"model": "emoji"}, content=npy_bytes(image), headers={"content-type": "application/x-npy"}
        )
    body = answer.json()
    assert answer.status_code == 200 and body["table"] is None
    assert body["results"][0]["percentile"] is None and body["results"][0]["outlier"] is None
    assert np.isfinite(body["results"][0]["nll"])


@pytest.mark.parametrize(
    "params, body, media_type, status, words",
    [
        ({"k": 0}, None, None, 422, "k"),
        ({"k": 5000}, None, None, 422, "VAE_MAX_SCORE_K"),
        ({"k": "many"}, None, None, 422, "k"),
        ({"model": "nope"}, None, None, 404, "nope"),
        ({}, np.zeros((2, 1, 27, 28), np.float32), "application/x-npy", 422, "expected [N, 1, 28, 28]"),
        ({}, np.full((1, 1, 28, 28), np.nan, np.float32), "application/x-npy", 422, "[0, 1]"),
        ({}, np.full((1, 1, 28, 28), 2.0, np.float32), "application/x-npy", 422, "[0, 1]"),
        ({}, np.array(["a"]), "application/x-npy", 422, "numbers"),
        ({}, b"\x93NUMPY garbage", "application/x-npy", 422, ".npy"),
        ({}, b"\x89PNG\r\n\x1a\n broken", "image/png", 422, "image"),
        ({}, b"{}", "application/json", 415, "Content-Type"),
    ],
)
def test_bad_score_requests_get_a_4xx_naming_what_is_allowed(live_server, params, body, media_type, status, words):
    content = npy_bytes(body) if isinstance(body, np.ndarray) else body
    with live_server.client() as http:
        if content is None:
            answer = http.post("/score", params=params, files=uploads(np.zeros((1, 28, 28), np.uint8)))
        else:
            answer = http.post("/score", params=params, content=content, headers={"content-type": media_type})
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]["message"]
        assert http.get("/health").status_code == 200


def test_k_times_images_is_bounded_by_a_setting(server_factory):
    server = server_factory({"VAE_MAX_SCORE_ROWS": "100"})
    with server.client() as http:
        files = uploads(np.zeros((4, 28, 28), np.uint8))
        refused = http.post("/score", params={"k": 26}, files=files)
        assert refused.status_code == 422 and "VAE_MAX_SCORE_ROWS" in refused.json()["error"]["message"]
        assert http.post("/score", params={"k": 25}, files=files).status_code == 200


def test_sample_draws_from_the_stored_mixture_or_one_class(live_server):
    with live_server.client() as http:

        def draw(**params) -> np.ndarray:
            answer = http.post("/sample", params={"n": 8, "seed": 4, "format": "npy", **params})
            assert answer.status_code == 200, answer.text
            return npy(answer.content)

        card = http.get("/models/mnist").json()["card"]
        assert np.array_equal(draw(), draw(prior=card["prior"]["default"]))
        assert not np.array_equal(draw(prior="standard"), draw(prior="mixture"))
        assert np.array_equal(draw(prior="mixture"), draw(prior="mixture"))
        clothes = http.get("/models/fashion-mnist").json()["card"]["labels"]
        assert np.array_equal(draw(model="fashion-mnist", label=clothes[3]), draw(model="fashion-mnist", label=3))
        assert not np.array_equal(draw(label=3), draw(label=4))
        # The seeds of /interpolate start where /sample?n=1 with that seed does, from the same prior.
        walk = npy(http.post("/interpolate", params={"seeds": "4,5", "steps": 2, "format": "npy"}).content)
        first = npy(http.post("/sample", params={"n": 1, "seed": 4, "format": "npy"}).content)
        assert np.array_equal(walk[0], first[0])


@pytest.mark.parametrize(
    "params, words",
    [
        ({"label": "cat"}, "allowed: 0, 1, 2"),
        ({"label": "10"}, "allowed: 0, 1, 2"),
        ({"label": "3", "prior": "standard"}, "leave out 'prior'"),
        ({"prior": "gaussian"}, "prior"),
        ({"model": "emoji", "prior": "mixture"}, "allowed: standard"),
        ({"model": "emoji", "label": "flags"}, "no class-conditional priors"),
    ],
)
def test_bad_prior_or_label_is_422_listing_what_the_model_has(live_server, params, words):
    with live_server.client() as http:
        answer = http.post("/sample", params={"n": 2, **params})
    assert answer.status_code == 422 and words in answer.json()["error"]["message"], answer.text
