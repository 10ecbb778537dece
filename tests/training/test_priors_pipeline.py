"""fit-prior and score-table on a tiny exported model: what they write is what the service reads,
and training's mixture draws and densities are the service's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from service.config import Settings
from service.priors import Mixture as ServedMixture
from service.priors import load_prior
from service.registry import load_model
from service.scoring import load_table
from training.cards import sha256_file
from training.config import TrainConfig
from training.data import Dataset, Split, load_dataset
from training.export import export_run
from training.priors import Mixture, fit_prior
from training.scores import score_table
from training.train import train

TINY = dict(latent_dim=4, channels=8, hidden=32, batch_size=64, limit_train=512, limit_test=128)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    full = load_dataset("mnist")
    small = Dataset("mnist", Split(full.train.images[:2_000], full.train.labels[:2_000]), full.test)
    run = tmp_path_factory.mktemp("run")
    train(TrainConfig(epochs=1, **TINY), run, dataset=small, threads=1)
    out = tmp_path_factory.mktemp("models") / "tiny"
    export_run(run, out, name="tiny", version="0.0.1")
    return out


@pytest.fixture(scope="module")
def fitted(tiny_model):
    report = fit_prior(
        tiny_model,
        None,
        components=(2, 3),
        fit_images=2_000,
        heldout_images=500,
        class_components=1,
        nll_images=20,
        nll_k=8,
        threads=1,
    )
    return tiny_model, report


def test_fit_prior_picks_k_by_held_out_likelihood_and_writes_what_the_service_loads(fitted):
    folder, report = fitted
    held_out = report["selection"]["heldout_log_likelihood_nats"]
    assert report["components"] == int(max(held_out, key=held_out.get))
    card = json.loads((folder / "model.json").read_text())
    assert card["files"]["prior"]["sha256"] == sha256_file(folder / "prior.npz")
    assert card["prior"] == report and card["labels"] == [str(d) for d in range(10)]
    # Without a classifier there is no Fréchet distance to choose by: the trained-with prior stays.
    assert report["default"] == "standard" and "sample_quality" not in report["metrics"]
    stored = load_prior(folder / "prior.npz", 4, card["labels"])
    assert len(stored.mixture.weights) == report["components"] and len(stored.classes) == 10
    nll = report["metrics"]["importance_sampled_nll_nats"]
    assert set(nll) == {"standard", "mixture"} and all(np.isfinite(v["mean"]) for v in nll.values())


def test_training_draws_and_densities_are_the_services(fitted):
    folder, _ = fitted
    with np.load(folder / "prior.npz") as archive:
        trained = Mixture(archive["weights"], archive["means"], archive["covariances"])
    served = ServedMixture.of(trained.weights, trained.means, trained.covariances)
    drawn = trained.sample(64, np.random.default_rng(5), 0.8)
    np.testing.assert_allclose(served.sample(64, np.random.default_rng(5), 0.8), drawn, rtol=1e-5, atol=1e-5)
    z = drawn.astype(np.float32)
    np.testing.assert_allclose(trained.log_prob(torch.from_numpy(z)).numpy(), served.log_prob(z), rtol=1e-4)


def test_score_table_writes_the_test_set_table_and_its_figures(fitted):
    folder, _ = fitted
    report = score_table(folder, ood="fashion-mnist", images=100, k=8, threads=1)
    card = json.loads((folder / "model.json").read_text())
    assert card["files"]["scores"]["sha256"] == sha256_file(folder / "scores.npz") and card["scores"] == report
    table = load_table(folder / "scores.npz")
    assert len(table.neg_elbo) == report["table_images"] == 50 and table.k == 8
    assert 0 <= report["heldout_false_positive_rate"]["rate"] <= 1
    assert set(report["ood"]["auroc"]) == {"raw", "complexity_corrected", "two_sided"}
    model = load_model(folder, Settings())
    assert model.prior is not None and model.score_table is not None and model.card.prior.default == "standard"


def test_with_a_classifier_the_default_prior_is_the_one_with_the_lower_frechet_distance(tmp_path, tiny_model):
    import shutil

    from training.classifier import train_classifier

    full = load_dataset("mnist")
    small = Dataset("mnist", Split(full.train.images[:2_000], full.train.labels[:2_000]), full.test)
    classifier = tmp_path / "classifier"
    train_classifier(small, classifier, epochs=1, threads=1, limit_train=2_000)
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model, folder)
    guide = tmp_path / "guide"
    train_classifier(small, guide, epochs=1, seed=1, threads=1, limit_train=2_000)
    report = fit_prior(
        folder, classifier, components=(2,), fit_images=1_000, heldout_images=200, class_components=1,
        n_samples=300, nll_images=10, nll_k=4, threads=1, guide_dir=guide, guide_confidence=0.5,
    )  # fmt: skip
    quality = report["metrics"]["sample_quality"]
    fds = {kind: quality[kind]["frechet_distance"] for kind in ("standard", "mixture")}
    assert report["default"] == min(fds, key=fds.get)
    assert set(quality["temperature_sweep"]["mixture"]) == {"0.6", "0.7", "0.8", "0.9", "1.0"}
    fidelity = report["metrics"]["reconstructions_classified_as_their_label"]
    assert 0 <= fidelity["share"] <= 1 and len(fidelity["per_class"]) == 10
    chosen = report["class_conditional"]["fitted_on"]
    measured = report["metrics"]["class_conditional"]
    # The unguided fit is measured beside the guided ones, and never stored.
    assert set(measured) == {"posterior samples", "encoder means", "posterior samples, no guide"}
    shares = {s: v["mean_share"] for s, v in measured.items() if s != "posterior samples, no guide"}
    assert chosen.startswith(f"the {max(shares, key=shares.get)} ") and "guide recognises" in chosen
    guided = report["class_conditional"]["guide"]
    assert guided["seed"] == 1 and guided["confidence"] == 0.5 and len(guided["kept_share_per_class"]) == 10
    assert all(0 < share <= 1 for share in guided["kept_share_per_class"])
    assert f"--guide {guide} --guide-confidence 0.5" in report["command"]


def test_score_table_borrows_the_services_scoring_maths_without_fastapi():
    import subprocess
    import sys

    check = (
        "import sys, training.scores; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn')], 'web stack'"
    )
    subprocess.run([sys.executable, "-c", check], check=True)
