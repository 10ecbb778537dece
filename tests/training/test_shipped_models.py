"""The models the repository ships: intact, loadable, and as good as their cards say."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from training import runs
from training.cards import sha256_file
from training.config import TrainConfig

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


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_weights_load_into_todays_model_and_reproduce_the_shipped_graphs(name, tmp_path):
    """The 28x28 parameterisation is unchanged: a run folder holding the shipped weights loads strictly."""
    meta = card(name)
    weights = {}
    for graph, prefix in (("encoder", "encoder."), ("decoder", "")):
        for tensor in onnx.load(str(MODELS / name / f"{graph}.onnx")).graph.initializer:
            if tensor.name.endswith((".weight", ".bias")):
                weights[prefix + tensor.name] = torch.from_numpy(numpy_helper.to_array(tensor).copy())
    runs.write_config(tmp_path, TrainConfig.from_dict(meta["training"]["config"]))
    runs.save_checkpoint(tmp_path, {"model": weights, "epoch": meta["training"]["epochs_completed"]})
    model, _ = runs.load_model(tmp_path)

    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    encoder = ort.InferenceSession(str(MODELS / name / "encoder.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(MODELS / name / "decoder.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        mu, logvar = model.encode(images)
        decoded = torch.sigmoid(model.decode(mu))
    onnx_mu, onnx_logvar = encoder.run(None, {"image": images.numpy()})
    (onnx_decoded,) = decoder.run(None, {"z": mu.numpy()})
    np.testing.assert_allclose(mu.numpy(), onnx_mu, atol=1e-4)
    np.testing.assert_allclose(logvar.numpy(), onnx_logvar, atol=1e-4)
    np.testing.assert_allclose(decoded.numpy(), onnx_decoded, atol=1e-4)


def test_the_shipped_colour_model_matches_its_card_and_runs_at_any_batch_size():
    meta = card("emoji")
    assert meta["image_shape"] == [3, 64, 64] and meta["preprocessing"] == "fit"
    sessions = {}
    for graph in ("encoder", "decoder"):
        entry = meta["files"][graph]
        assert sha256_file(MODELS / "emoji" / entry["path"]) == entry["sha256"]
        sessions[graph] = ort.InferenceSession(
            str(MODELS / "emoji" / entry["path"]), providers=["CPUExecutionProvider"]
        )
    latent = meta.get("latent_shape", [meta["latent_dim"]])
    for n in (1, 3, 17):
        mu, logvar = sessions["encoder"].run(None, {"image": np.random.rand(n, 3, 64, 64).astype(np.float32)})
        assert mu.shape == logvar.shape == (n, *latent)
        (image,) = sessions["decoder"].run(None, {"z": np.random.randn(n, *latent).astype(np.float32)})
        assert image.shape == (n, 3, 64, 64) and 0 <= image.min() and image.max() <= 1
    metrics = meta["metrics"]
    for figure in ("test_neg_elbo_nats", "bits_per_dim", "reconstruction_mse_per_pixel", "active_units"):
        assert figure in metrics or figure in str(metrics), figure


@pytest.mark.parametrize("name, test_images", [("mnist", 10_000), ("fashion-mnist", 10_000), ("emoji", 356)])
def test_each_shipped_model_has_a_projection_of_its_whole_test_set_that_its_card_verifies(name, test_images):
    meta = card(name)
    entry = meta["files"]["projection"]
    path = MODELS / name / entry["path"]
    assert sha256_file(path) == entry["sha256"]
    projection = json.loads(path.read_text())
    assert projection["schema_version"] == 1 and projection["model"] == name and projection["kind"] == "pca"
    assert projection["encoder_sha256"] == meta["files"]["encoder"]["sha256"]  # made from the shipped encoder
    assert projection["test_images"] == test_images
    assert len(projection["points"]) == len(projection["point_labels"]) == min(2000, test_images)
    assert projection["labels"] == meta.get("labels", projection["labels"]) and len(projection["labels"]) >= 9
    components = np.array(projection["components"])
    assert components.shape == (2, meta["latent_dim"]) and len(projection["mean"]) == meta["latent_dim"]
    np.testing.assert_allclose(components @ components.T, np.eye(2), atol=1e-6)
    assert 0 < projection["explained_variance_ratio"][1] <= projection["explained_variance_ratio"][0] < 1
