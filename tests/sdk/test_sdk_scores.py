"""Client.score / AsyncClient.score and `vae score`: against the real service on the shipped
mnist model, and the request splitting against a scripted server (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json
import math
import re

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import vae_client
from devtools.images import digit_array, digit_png_bytes
from vae_client import AsyncClient, Client
from vae_client._images import encode_png
from vae_client.cli import app

FIGURES = ("neg_elbo", "reconstruction", "kl", "nll", "bits_per_dim", "complexity_bits", "complexity_corrected")
DIGITS = [digit_png_bytes(index) for index in range(6)]  # MNIST test digits (drawn ones without data/)


def figures(result: vae_client.ScoreResult) -> np.ndarray:
    return np.stack([result.column(name) for name in FIGURES], axis=1)


@pytest.fixture
def client(live_server):
    with Client(live_server.base_url, timeout=60) as client:
        yield client


def test_scores_of_real_digits_are_finite_and_consistent(client, digit_png):
    result = client.score([digit_png, *DIGITS[:3]], k=32, seed=1)
    assert isinstance(result, vae_client.ScoreResult) and len(result) == 4
    assert (result.model, result.k, result.seed) == ("mnist", 32, 1)
    assert result.prior in ("standard", "mixture") and 0 < result.outlier_percentile < 100
    assert result.filenames == ["digit.png", None, None, None]
    assert np.isfinite(figures(result)).all()
    for row in result:
        assert isinstance(row, vae_client.ImageScore)
        assert row.neg_elbo == pytest.approx(row.reconstruction + row.kl)
        assert row.kl >= 0 and row.reconstruction > 0 and row.nll > 0
        # A Bernoulli model's bits/dim is the NLL in bits over its 784 pixels.
        assert row.bits_per_dim == pytest.approx(row.nll / (784 * math.log(2)))
    np.testing.assert_array_equal(result.neg_elbo, [row.neg_elbo for row in result])
    # digit.png is DIGITS[0]: the same picture gets the same scores in one request.
    np.testing.assert_allclose(figures(result)[0], figures(result)[1], rtol=1e-6)


def test_the_same_seed_gives_the_same_scores_sync_and_async(live_server):
    with Client(live_server.base_url, timeout=60) as vae:
        first = vae.score(DIGITS[:3], k=16, seed=7)
        other_seed = vae.score(DIGITS[:3], k=16, seed=8)

    async def score():
        async with AsyncClient(live_server.base_url, timeout=60) as vae:
            return await vae.score(DIGITS[:3], k=16, seed=7)

    again = asyncio.run(score())
    np.testing.assert_allclose(figures(again), figures(first), rtol=1e-6)
    assert (again.model, again.k, again.seed, again.prior) == (first.model, first.k, first.seed, first.prior)
    assert not np.allclose(other_seed.nll, first.nll, rtol=1e-9, atol=0)


def test_more_images_than_one_request_takes_are_split_and_joined_in_order(live_server):
    images = DIGITS[:5]
    with Client(live_server.base_url, timeout=60) as whole:
        together = whole.score(images, k=8)
    with Client(live_server.base_url, timeout=60, max_upload_images=2) as split:
        parts = split.score(images, k=8)

    async def split_async():
        async with AsyncClient(live_server.base_url, timeout=60, max_upload_images=2) as vae:
            return await vae.score(images, k=8)

    concurrent = asyncio.run(split_async())
    # Every request uses the same seed and the images of a request share the importance samples,
    # so an image scores the same whatever it was sent with.
    np.testing.assert_allclose(figures(parts), figures(together), rtol=1e-5)
    np.testing.assert_allclose(figures(concurrent), figures(together), rtol=1e-5)
    assert len(parts) == len(concurrent) == 5 and parts.k == 8


def test_arrays_are_scored_as_their_8_bit_png_uploads(client):
    pixels = np.stack([digit_array(index) for index in range(3)])[:, None] / 255.0  # float [N, 1, 28, 28]
    from_array = client.score(pixels, k=8)
    from_png = client.score([encode_png(np.rint(image[0] * 255).astype(np.uint8)) for image in pixels], k=8)
    np.testing.assert_allclose(figures(from_array), figures(from_png), rtol=1e-6)
    samples = client.sample(2, seed=0).images  # result arrays go straight back in
    assert np.isfinite(client.score(samples, normalize=False, k=4).nll).all()


def test_k_beyond_the_services_limit_is_invalid_request(client):
    with pytest.raises(vae_client.InvalidRequest) as caught:
        client.score(DIGITS[0], k=10**6)
    assert (caught.value.status, caught.value.code) == (422, "invalid_request")
    assert "VAE_MAX_SCORE_K" in caught.value.message and caught.value.details["max"] >= 1


def test_other_models_and_bad_inputs_are_typed_errors(client):
    with pytest.raises(vae_client.ModelNotFound):
        client.score(DIGITS[0], model="no-such-model")
    with pytest.raises(vae_client.InvalidImage):
        client.score(b"definitely not an image")
    with pytest.raises(ValueError, match="no images"):
        client.score([])


def test_percentiles_and_outlier_flags_follow_the_models_table(client):
    result = client.score(DIGITS, k=16)
    if result.table is None:
        assert all(row.percentile is None and row.outlier is None for row in result)
        return
    assert result.table.images > 0 and result.table.k >= 1
    for row in result:
        assert 0 <= row.percentile <= 100 and 0 <= row.outlier_score <= 100
        assert row.outlier == (row.outlier_score > result.outlier_percentile)


# --- the command line ----------------------------------------------------------------------


@pytest.fixture
def vae(live_server, monkeypatch):
    monkeypatch.setenv("VAE_URL", live_server.base_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(arg) for arg in args])


def test_vae_score_prints_one_line_per_image(vae, client, digit_png, tmp_path):
    other = tmp_path / "seven.png"
    other.write_bytes(DIGITS[1])
    result = vae("score", digit_png, other, "--k", 16, "--seed", 3)
    assert result.exit_code == 0, result.output
    header, *rows, footer = result.stdout.splitlines()
    assert header.split() == ["FILE", "NEG_ELBO", "NLL", "BITS/DIM", "PERCENTILE", "OUTLIER"]
    assert [row.split()[0] for row in rows] == [str(digit_png), str(other)]
    expected = client.score([digit_png, other], k=16, seed=3)
    for row, figures_of in zip(rows, expected, strict=True):
        cells = row.split()
        assert float(cells[1]) == pytest.approx(figures_of.neg_elbo, abs=0.01)
        assert float(cells[2]) == pytest.approx(figures_of.nll, abs=0.01)
        assert float(cells[3]) == pytest.approx(figures_of.bits_per_dim, abs=1e-4)
        assert cells[5] in ("yes", "no", "-")
    assert footer.startswith("(model mnist, k 16, seed 3, prior ")


def test_vae_score_json_is_the_services_answer(vae, digit_png):
    result = vae("score", digit_png, "-k", 8, "--json", "--model", "mnist")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["model"], body["k"], body["seed"]) == ("mnist", 8, 0)
    (row,) = body["results"]
    assert row["filename"] == "digit.png" and set(row) == {
        "filename",
        *FIGURES,
        "percentile",
        "outlier_score",
        "outlier",
    }
    assert all(math.isfinite(row[name]) for name in FIGURES)


def test_vae_score_errors_exit_1_with_the_services_message(vae, digit_png):
    result = vae("score", digit_png, "--k", 10**6)
    assert result.exit_code == 1
    assert "error: 422 invalid_request:" in result.stderr and "VAE_MAX_SCORE_K" in result.stderr


# --- splitting, against a scripted server --------------------------------------------------


def scripted_scores(request: httpx.Request) -> httpx.Response:
    """A /score answer with one result per file part, its neg_elbo the part's image number."""
    names = re.findall(rb'filename="image-(\d+)\.png"', request.content)
    row = dict.fromkeys(FIGURES, 1.0) | {"percentile": None, "outlier_score": None, "outlier": None}
    results = [row | {"filename": f"image-{int(n)}.png", "neg_elbo": float(n)} for n in names]
    params = request.url.params
    body = {"model": "mnist", "k": int(params["k"]), "seed": int(params["seed"]), "prior": "standard"}
    body |= {"outlier_percentile": 99.0, "table": {"images": 10, "k": 4, "prior": "standard"}, "results": results}
    return httpx.Response(200, json=body)


def test_every_request_of_a_split_score_uses_the_same_seed_and_k():
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return scripted_scores(request)

    images = np.zeros((7, 1, 4, 4), np.float32)
    with Client("http://vae.test", transport=httpx.MockTransport(answer), max_upload_images=3) as vae:
        result = vae.score(images, k=5, seed=11, normalize=False)
    assert [request.url.path for request in sent] == ["/score"] * 3
    assert {(r.url.params["k"], r.url.params["seed"], r.url.params["normalize"]) for r in sent} == {
        ("5", "11", "false")
    }
    assert result.neg_elbo.tolist() == list(range(7)) and result.filenames == [None] * 7
    assert result.table == vae_client.ScoreTable(images=10, k=4, prior="standard")
    assert result.to_json()["results"][6]["neg_elbo"] == 6.0


def test_an_answer_without_one_result_per_image_is_an_unexpected_response():
    def short(request: httpx.Request) -> httpx.Response:
        answer = scripted_scores(request)
        body = answer.json()
        return httpx.Response(200, json=body | {"results": body["results"][:-1]})

    with Client("http://vae.test", transport=httpx.MockTransport(short)) as vae:
        with pytest.raises(vae_client.APIError) as caught:
            vae.score(np.zeros((2, 1, 4, 4), np.float32))
    assert caught.value.code == "unexpected_response" and "1 results for 2 images" in caught.value.message
