"""A tiny model goes through the whole offline pipeline: train, resume, evaluate, export (with its map)."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.cards import sha256_file
from training.classifier import train_classifier
from training.config import TrainConfig
from training.data import Dataset, Split, load_dataset
from training.evaluate import evaluate_run
from training.export import PARITY_TOLERANCE, export_run
from training.train import train

TINY = dict(latent_dim=4, channels=8, hidden=32, batch_size=64, limit_train=512, limit_test=128)


@pytest.fixture(scope="module")
def small_mnist() -> Dataset:
    full = load_dataset("mnist")
    return Dataset(
        "mnist",
        Split(full.train.images[:10_000], full.train.labels[:10_000]),
        Split(full.test.images[:1_000], full.test.labels[:1_000]),
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, small_mnist):
    out = tmp_path_factory.mktemp("run")
    train(TrainConfig(epochs=2, **TINY), out, dataset=small_mnist, threads=1)
    return out


def test_training_writes_a_checkpoint_and_metrics_each_epoch(tiny_run):
    lines = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert lines[1]["test_neg_elbo"] < lines[0]["test_neg_elbo"]
    state = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2


def test_resume_after_a_cut_off_gives_the_same_weights_as_an_uninterrupted_run(
    tmp_path, small_mnist, tiny_run, monkeypatch
):
    import training.train as train_module

    real_test_elbo, calls = train_module.test_elbo, []

    def cut_off_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the session is cut off after epoch 1 was checkpointed
        return real_test_elbo(*args, **kwargs)

    monkeypatch.setattr(train_module, "test_elbo", cut_off_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(epochs=2, **TINY), tmp_path, dataset=small_mnist, threads=1)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(train_module, "test_elbo", real_test_elbo)
    train(TrainConfig(epochs=2, **TINY), tmp_path, dataset=small_mnist, threads=1, resume=True)

    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    straight = torch.load(tiny_run / "checkpoint.pt", weights_only=True)["model"]
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_second_training_into_the_same_folder_needs_resume(tmp_path, small_mnist):
    train(TrainConfig(epochs=1, **TINY), tmp_path, dataset=small_mnist, threads=1)
    with pytest.raises(SystemExit, match="--resume"):
        train(TrainConfig(epochs=1, **TINY), tmp_path, dataset=small_mnist, threads=1)


def test_evaluate_then_export_gives_graphs_that_match_torch_and_the_card(tmp_path, tiny_run, small_mnist, monkeypatch):
    import training.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "load_data", lambda config: small_mnist)
    classifier_dir = tmp_path / "classifier"
    report = train_classifier(small_mnist, classifier_dir, epochs=1, threads=1, limit_train=2000)
    assert 0.5 < report["test_accuracy"] <= 1.0

    metrics = evaluate_run(tiny_run, classifier_dir, nll_k=50, nll_images=32, n_samples=500, threads=1)
    assert metrics["importance_sampled_nll_nats"] <= metrics["test_neg_elbo_nats"] + 5
    assert 0 <= metrics["active_units"] <= 4
    assert metrics["sample_quality"]["frechet_distance_samples_vs_test"] > 0

    out = tmp_path / "models" / "tiny"
    card = export_run(tiny_run, out, name="tiny", version="0.0.1")
    on_disk = json.loads((out / "model.json").read_text())
    assert on_disk == card
    assert card["metrics"]["importance_sampled_nll_nats"] == metrics["importance_sampled_nll_nats"]
    assert card["latent_dim"] == 4 and card["image_shape"] == [1, 28, 28]
    for graph in ("encoder", "decoder"):
        entry = card["files"][graph]
        assert sha256_file(out / entry["path"]) == entry["sha256"]
        assert card["export"]["parity_max_abs_diff"][graph] <= PARITY_TOLERANCE
    # The export maps the run's test set (its first limit_test images) for the playground.
    assert card["files"]["projection"]["sha256"] == sha256_file(out / "projection.json")
    projection = json.loads((out / "projection.json").read_text())
    assert projection["test_images"] == 128 and len(projection["points"]) == 128
    assert projection["point_labels"] == small_mnist.test.labels[:128].tolist()

    encoder = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in encoder.get_outputs()] == ["mu", "logvar"]
    for n in (1, 3, 64):
        mu, logvar = encoder.run(None, {"image": np.random.rand(n, 1, 28, 28).astype(np.float32)})
        assert mu.shape == logvar.shape == (n, 4)
        (image,) = decoder.run(None, {"z": np.random.randn(n, 4).astype(np.float32)})
        assert image.shape == (n, 1, 28, 28)
        assert image.min() >= 0 and image.max() <= 1


def test_decoder_graph_has_no_random_ops(tmp_path, tiny_run):
    import onnx

    out = tmp_path / "m"
    export_run(tiny_run, out, name="m", version="0")
    for graph in ("encoder.onnx", "decoder.onnx"):
        ops = {node.op_type for node in onnx.load(str(out / graph)).graph.node}
        assert not ops & {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial"}


def test_onnxruntime_decoding_gives_the_same_importance_sampled_nll_as_torch(tmp_path, tiny_run):
    from training.evaluate import importance_sampled_nll, onnx_logits_decoder
    from training.runs import load_model

    model, _ = load_model(tiny_run)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)).bernoulli()
    with_torch = importance_sampled_nll(model, x, k=64, seed=3)
    with_onnx = importance_sampled_nll(model, x, k=64, seed=3, decode=onnx_logits_decoder(model, tmp_path))
    torch.testing.assert_close(with_onnx, with_torch, atol=1e-3, rtol=0)
