"""The models the repository ships: intact, loadable, and as good as their cards say."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from training.export import sha256_file

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = ("mnist", "fashion-mnist")


def card(name: str) -> dict:
    return json.loads((MODELS / name / "model.json").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_graphs_match_their_card_and_run_at_any_batch_size(name):
    meta = card(name)
    assert meta["schema_version"] == 1 and meta["name"] == name
    sessions = {}
    for graph in ("encoder", "decoder"):
        entry = meta["files"][graph]
        assert sha256_file(MODELS / name / entry["path"]) == entry["sha256"]
        sessions[graph] = ort.InferenceSession(str(MODELS / name / entry["path"]), providers=["CPUExecutionProvider"])
    latent = meta["latent_dim"]
    for n in (1, 3, 64):
        mu, logvar = sessions["encoder"].run(
            None, {"image": np.random.rand(n, *meta["image_shape"]).astype(np.float32)}
        )
        assert mu.shape == logvar.shape == (n, latent)
        (image,) = sessions["decoder"].run(None, {"z": np.random.randn(n, latent).astype(np.float32)})
        assert image.shape == (n, *meta["image_shape"]) and 0 <= image.min() and image.max() <= 1


@pytest.mark.parametrize("name, min_accuracy", [("mnist", 0.99), ("fashion-mnist", 0.90)])
def test_shipped_cards_report_sample_quality_with_a_good_enough_classifier(name, min_accuracy):
    metrics = card(name)["metrics"]
    assert metrics["classifier"]["test_accuracy"] >= min_accuracy
    quality = metrics["sample_quality"]
    assert quality["n_samples"] == 10_000
    assert quality["frechet_distance_samples_vs_test"] > quality["frechet_distance_floor_test_vs_train"] > 0
    selection = card(name)["training"]["likelihood_selection"]
    assert selection["winner"] == card(name)["likelihood"]


def test_shipped_mnist_meets_the_nll_target_on_the_whole_test_set():
    meta = card("mnist")
    metrics = meta["metrics"]
    assert meta["likelihood"] == "bernoulli"
    assert metrics["importance_samples_k"] >= 1000
    assert metrics["nll_test_images"] == 10_000
    assert metrics["importance_sampled_nll_nats"] <= 87.0
