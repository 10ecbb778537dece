"""Stored priors and the score table: their numpy maths against references, and their files'
checks (a bad file stops the model from loading, naming the file)."""

from __future__ import annotations

import io
import json
import math
import shutil

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from devtools.live import MODELS_DIR as MODELS
from service.config import Settings
from service.priors import Mixture, load_prior, standard_log_prob
from service.registry import ModelLoadError, load_model, sha256_of
from service.scoring import (
    ScoreTable,
    combined_percentiles,
    complexity_bits,
    load_table,
    log_likelihood,
    score_noise,
    score_one,
    table_arrays,
)


def random_mixture(rng, k=3, d=4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d))
    factors = rng.normal(size=(k, d, d))
    covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(d)
    return weights, means, covariances


def test_the_mixture_density_is_the_weighted_sum_of_its_gaussians():
    rng = np.random.default_rng(0)
    weights, means, covariances = random_mixture(rng)
    z = rng.normal(size=(50, 4))
    expected = logsumexp(
        [np.log(w) + multivariate_normal(m, c).logpdf(z) for w, m, c in zip(weights, means, covariances, strict=True)],
        axis=0,
    )
    np.testing.assert_allclose(Mixture.of(weights, means, covariances).log_prob(z), expected, rtol=1e-9)
    np.testing.assert_allclose(standard_log_prob(z), multivariate_normal(np.zeros(4)).logpdf(z), rtol=1e-9)


def test_mixture_samples_follow_its_weights_means_and_covariances():
    rng = np.random.default_rng(1)
    weights, means, covariances = np.array([0.25, 0.75]), np.array([[-5.0, 0.0], [5.0, 0.0]]), np.stack([np.eye(2)] * 2)
    covariances[1] = [[2.0, 0.9], [0.9, 1.0]]
    z = Mixture.of(weights, means, covariances).sample(40_000, rng, 1.0)
    right = z[:, 0] > 0
    assert z.dtype == np.float32 and abs(right.mean() - 0.75) < 0.01
    np.testing.assert_allclose(np.cov(z[right].T), covariances[1], atol=0.05)
    half = Mixture.of(weights, means, covariances).sample(40_000, np.random.default_rng(1), 0.5)
    np.testing.assert_allclose(np.cov(half[half[:, 0] > 0].T), covariances[1] / 4, atol=0.02)


def test_mixture_draws_keep_the_stream_of_choice_and_einsum_that_training_uses():
    """A seed gives the latents it gave before the per-call checks of rng.choice were dropped."""
    weights = np.random.default_rng(3).dirichlet(np.ones(7))
    means = np.random.default_rng(4).normal(size=(7, 5))
    factors = np.random.default_rng(5).normal(size=(7, 5, 5))
    mixture = Mixture.of(weights, means, factors @ factors.transpose(0, 2, 1) + np.eye(5))
    for seed, n, temperature in ((0, 1, 1.0), (1, 256, 0.7), (2, 33, 1.3)):
        rng = np.random.default_rng(seed)
        component = rng.choice(7, size=n, p=mixture.weights)
        eps = rng.standard_normal((n, 5))
        before = mixture.means[component] + temperature * np.einsum("nij,nj->ni", mixture.cholesky[component], eps)
        drawn = mixture.sample(n, np.random.default_rng(seed), temperature)
        np.testing.assert_allclose(drawn, before.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_one_image_scores_match_a_direct_computation():
    rng = np.random.default_rng(2)
    d, k = 3, 200
    mu, logvar = rng.normal(size=d).astype(np.float32), rng.normal(scale=0.3, size=d).astype(np.float32)
    eps = score_noise(7, k, d)
    log_px_z = rng.normal(-50, 2, size=k)
    figures = score_one(mu, logvar, eps, log_px_z, None)
    sigma = np.exp(0.5 * logvar.astype(np.float64))
    z = mu + sigma * eps
    log_q = multivariate_normal(mu, np.diag(sigma**2)).logpdf(z)
    log_p = multivariate_normal(np.zeros(d)).logpdf(z)
    assert figures.reconstruction == pytest.approx(-log_px_z.mean())
    assert figures.kl == pytest.approx(0.5 * float((-logvar + mu**2 + np.exp(logvar) - 1).sum()), rel=1e-5)
    assert figures.nll == pytest.approx(-(logsumexp(log_px_z + log_p - log_q) - math.log(k)), rel=1e-6)
    # Under a mixture the KL is the Monte Carlo estimate with that mixture's density.
    mixture = Mixture.of(*random_mixture(rng, 2, d))
    with_mixture = score_one(mu, logvar, eps, log_px_z, mixture)
    assert with_mixture.kl == pytest.approx(float((log_q - mixture.log_prob(z)).mean()), rel=1e-5)
    # The same seed gives the same draws; another seed others.
    assert np.array_equal(score_noise(7, k, d), eps) and not np.array_equal(score_noise(8, k, d), eps)


def test_the_bernoulli_likelihood_stays_finite_where_float32_probabilities_saturate():
    x = np.array([[[1.0, 0.0, 0.5]]], dtype=np.float32)
    decoded = np.array([[[[0.0, 1.0, 0.5]]]], dtype=np.float32)
    value = log_likelihood(x, decoded, "bernoulli", None)
    assert np.isfinite(value).all() and value[0] == pytest.approx(2 * math.log(1e-7) + math.log(0.5), rel=1e-6)


def test_percentiles_and_the_two_sided_outlier_score_rank_against_the_table():
    raw, corrected = np.arange(100.0), np.arange(100.0)[::-1]
    arrays = table_arrays(raw, corrected, k=8, seed=0, prior="standard")
    table = ScoreTable(arrays["neg_elbo"], arrays["complexity_corrected"], arrays["combined"], 8, 0, "standard")
    assert table.percentile(49.5) == 50.0 and table.percentile(-1) == 0.0 and table.percentile(1e9) == 100.0
    # Beyond the table on either score is beyond every test image.
    assert table.outlier_score(1e9, -1e9) == 100.0 and table.outlier_score(-1e9, 1e9) == 100.0
    # In the middle of both: the middle of the combined table.
    assert table.outlier_score(49.5, 49.5) < 10
    assert np.array_equal(np.sort(combined_percentiles(raw, corrected)), arrays["combined"])


def test_complexity_is_the_png_length_in_bits():
    flat, noise = np.zeros((28, 28), np.uint8), np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    assert complexity_bits(flat) < complexity_bits(noise)
    assert complexity_bits(noise) % 8 == 0 and complexity_bits(noise) > 28 * 28 * 8 * 0.9


def _model_with(tmp_path, kind: str, data: bytes | None = None, arrays: dict | None = None):
    """A copy of the shipped mnist model whose `kind` file is replaced, the card's sha256 updated."""
    folder = tmp_path / "mnist"
    shutil.copytree(MODELS / "mnist", folder)
    card = json.loads((folder / "model.json").read_text())
    path = folder / card["files"][kind]["path"]
    if arrays is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
    assert data is not None
    path.write_bytes(data)
    card["files"][kind]["sha256"] = sha256_of(path)
    (folder / "model.json").write_text(json.dumps(card))
    return folder, path


def _stored(kind: str) -> dict:
    card = json.loads((MODELS / "mnist" / "model.json").read_text())
    with np.load(MODELS / "mnist" / card["files"][kind]["path"]) as archive:
        return {name: archive[name] for name in archive.files}


def test_the_shipped_models_carry_a_prior_and_a_score_table_that_load():
    for name in ("mnist", "fashion-mnist"):
        model = load_model(MODELS / name, Settings())
        assert model.prior is not None and len(model.prior.classes) == len(model.card.labels or []) == 10
        assert model.score_table is not None and model.card.prior.default in ("standard", "mixture")


@pytest.mark.parametrize(
    "kind, change, message",
    [
        ("prior", {"data": b"not a zip"}, "not a readable .npz"),
        ("prior", {"drop": "means"}, "'means' is missing"),
        ("prior", {"set": ("weights", lambda w: w * 2)}, "sum to 1"),
        ("prior", {"set": ("covariances", lambda c: -c)}, "positive definite"),
        ("prior", {"set": ("means", lambda m: m[:, :3])}, "expected [K], [K, 32]"),
        ("prior", {"set": ("class_means", lambda m: m[:4])}, "class_"),
        ("prior", {"set": ("schema_version", lambda v: np.array(2))}, "schema_version"),
        ("scores", {"set": ("neg_elbo", lambda v: v[::-1])}, "sorted"),
        ("scores", {"set": ("combined", lambda v: np.r_[v, np.nan])}, "finite"),
    ],
)
def test_a_bad_prior_or_score_file_stops_the_model_naming_the_file(tmp_path, kind, change, message):
    arrays = None
    if "data" not in change:
        arrays = _stored(kind)
        if "drop" in change:
            del arrays[change["drop"]]
        else:
            name, edit = change["set"]
            arrays[name] = edit(arrays[name])
    folder, path = _model_with(tmp_path, kind, change.get("data"), arrays)
    with pytest.raises(ModelLoadError) as failure:
        load_model(folder, Settings())
    assert str(path) in str(failure.value) and message in str(failure.value)


def test_a_prior_file_that_does_not_match_its_card_stops_the_model(tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(MODELS / "mnist", folder)
    with (folder / "prior.npz").open("ab") as stream:
        stream.write(b"\0")
    with pytest.raises(ModelLoadError, match="prior.npz: sha256 mismatch"):
        load_model(folder, Settings())
    (folder / "prior.npz").unlink()
    with pytest.raises(ModelLoadError, match="prior file named by .* is missing"):
        load_model(folder, Settings())


def test_the_stored_prior_reads_back_as_the_service_uses_it():
    card = json.loads((MODELS / "mnist" / "model.json").read_text())
    stored = load_prior(MODELS / "mnist" / "prior.npz", card["latent_dim"], card["labels"])
    z = stored.mixture.sample(8, np.random.default_rng(0), 1.0)
    assert z.shape == (8, card["latent_dim"]) and np.isfinite(stored.mixture.log_prob(z)).all()
    table = load_table(MODELS / "mnist" / "scores.npz")
    assert table.k == card["scores"]["importance_samples_k"] and len(table.neg_elbo) == card["scores"]["table_images"]
