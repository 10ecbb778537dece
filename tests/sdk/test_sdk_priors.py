"""sample(prior=, label=) and `vae sample --prior/--label` against the real service: the shipped
mnist model stores a mixture prior and one per class ("0".."9", models/mnist/prior.npz) and a
test-set score table (scores.npz); the colour test model has classes but neither."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from typer.testing import CliRunner

import vae_client
from vae_client import AsyncClient, Client
from vae_client.cli import app

DIGIT_LABELS = [str(digit) for digit in range(10)]


@pytest.fixture
def client(live_server):
    with Client(live_server.base_url, timeout=60) as client:
        yield client


def test_the_shipped_mnist_model_names_its_classes_and_stored_priors(client):
    mnist = client.model("mnist")
    assert mnist.labels == DIGIT_LABELS
    assert {"prior", "scores"} <= set(mnist.card["files"])


def test_the_mixture_prior_draws_other_images_than_the_standard_one(client):
    standard = client.sample(6, seed=0, prior="standard")
    mixture = client.sample(6, seed=0, prior="mixture")
    assert mixture.images.shape == (6, 1, 28, 28) and (mixture.prior, mixture.label) == ("mixture", None)
    assert not np.allclose(mixture.images, standard.images)
    np.testing.assert_array_equal(mixture.images, client.sample(6, seed=0, prior="mixture").images)
    # Without `prior`, the card's prior.default.
    default = client.model("mnist").card.get("prior", {}).get("default", "standard")
    np.testing.assert_array_equal(client.sample(6, seed=0).images, client.sample(6, seed=0, prior=default).images)


def test_a_label_is_a_class_name_or_its_index(client):
    by_name = client.sample(4, seed=3, label="7")
    by_index = client.sample(4, seed=3, label=7)
    with_prior = client.sample(4, seed=3, prior="mixture", label="7")
    np.testing.assert_array_equal(by_name.images, by_index.images)
    np.testing.assert_array_equal(by_name.images, with_prior.images)
    assert (by_index.label, by_name.label) == (7, "7")
    assert not np.allclose(by_name.images, client.sample(4, seed=3, label="1").images)


def test_each_class_prior_draws_that_digit(client):
    # A "1" has far less ink than a "0" or an "8": the class priors must reach the decoder.
    ink = {label: float(client.sample(32, seed=0, label=label).images.mean()) for label in ("0", "1", "8")}
    assert ink["1"] < 0.75 * min(ink["0"], ink["8"]), ink


def test_the_async_client_samples_the_same_class(live_server, client):
    async def sample():
        async with AsyncClient(live_server.base_url) as vae:
            return await vae.sample(3, seed=5, label=2)

    np.testing.assert_array_equal(asyncio.run(sample()).images, client.sample(3, seed=5, label="2").images)


def test_unknown_labels_and_impossible_priors_are_invalid_request(client):
    with pytest.raises(vae_client.InvalidRequest) as caught:
        client.sample(2, label="eleven")
    assert caught.value.code == "invalid_request" and caught.value.details["labels"] == DIGIT_LABELS
    with pytest.raises(vae_client.InvalidRequest, match="label"):
        client.sample(2, label=10)
    with pytest.raises(vae_client.InvalidRequest, match="mixture"):
        client.sample(2, prior="standard", label="3")
    with pytest.raises(vae_client.InvalidRequest, match="prior"):
        client.sample(2, prior="gaussian")


def test_a_model_without_stored_priors_says_what_it_allows(colour_server):
    with Client(colour_server.base_url) as vae:
        with pytest.raises(vae_client.InvalidRequest) as no_mixture:
            vae.sample(2, prior="mixture")
        with pytest.raises(vae_client.InvalidRequest) as no_class_priors:
            vae.sample(2, label="cat")
    assert no_mixture.value.details["allowed"] == ["standard"]
    assert no_class_priors.value.details["labels"] == ["cat", "dog"]


def test_scores_have_percentiles_from_the_shipped_table(client):
    noise = np.random.default_rng(0).integers(0, 2, (2, 28, 28), dtype=np.uint8) * 255
    result = client.score(noise, k=16, normalize=False)
    assert result.table is not None and result.table.images > 0
    for row in result:
        assert row.percentile == 100.0 and row.outlier is True
        assert row.outlier_score > result.outlier_percentile


# --- the command line ----------------------------------------------------------------------


@pytest.fixture
def vae(live_server, monkeypatch):
    monkeypatch.setenv("VAE_URL", live_server.base_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(arg) for arg in args])


def test_vae_sample_draws_from_a_class_prior(vae, client, tmp_path):
    result = vae("sample", "--prior", "mixture", "--label", 7, "-n", 4, "--seed", 1, "-o", tmp_path / "sevens.npy")
    assert result.exit_code == 0, result.output
    assert "wrote 4 samples (model mnist)" in result.output
    np.testing.assert_array_equal(np.load(tmp_path / "sevens.npy"), client.sample(4, seed=1, label="7").images)


def test_vae_sample_with_an_unknown_label_lists_the_classes(vae):
    result = vae("sample", "--label", "eleven", "-n", 2)
    assert result.exit_code == 1
    assert "error: 422 invalid_request:" in result.stderr and "0, 1, 2" in result.stderr
