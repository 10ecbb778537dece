"""Models of the user's own images, colour and any size, through train, evaluate and export."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tests.training.image_folders import make_image_folder
from training import runs
from training.classifier import train_classifier
from training.config import TrainConfig
from training.data import load_data
from training.evaluate import evaluate_run
from training.export import export_run
from training.train import train

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(latent_dim=4, channels=8, hidden=32, batch_size=8, epochs=1)
CHEAP_EVAL = dict(nll_k=8, n_samples=64, threads=1)


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory, folder_cache) -> Path:
    root = make_image_folder(tmp_path_factory.mktemp("folders") / "swatches", classes=("blue", "red"), per_class=16)
    (root / "blue" / "cut-off.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def sessions(model_dir: Path) -> dict[str, ort.InferenceSession]:
    return {
        graph: ort.InferenceSession(str(model_dir / f"{graph}.onnx"), providers=["CPUExecutionProvider"])
        for graph in ("encoder", "decoder")
    }


def test_an_rgb_non_square_folder_model_trains_evaluates_and_exports_its_card(tmp_path, colour_folder):
    config = TrainConfig(data=str(colour_folder), image_size="24x32", likelihood="gaussian", **TINY)
    run = train(config, tmp_path / "run", threads=1)
    assert runs.read_config(run).gaussian_scale == "learned"  # the default for folder data
    assert "test_bits_per_dim" in runs.read_metrics(run)[0]

    train_classifier(load_data(config), tmp_path / "classifier", epochs=1, threads=1)
    report = evaluate_run(run, tmp_path / "classifier", **CHEAP_EVAL)
    assert report["bits_per_dim"] > 0 and "dequantized" in report["test_set"]
    assert report["sample_quality"]["class_coverage"]["max_entropy_nats"] == pytest.approx(np.log(2), abs=1e-4)

    card = export_run(run, tmp_path / "swatches", name="swatches", version="0.0.1")
    assert card["dataset"] == "swatches"
    assert card["image_shape"] == [3, 24, 32]
    assert card["latent_shape"] == [4] and card["latent_dim"] == 4
    assert card["likelihood"] == "gaussian" and card["decoder_output"] == "probabilities"
    assert card["preprocessing"] == "fit"
    assert card["preprocessing_options"] == {"background": [255, 255, 255], "resize": "pad"}
    assert card["labels"] == ["blue", "red"]
    assert card["metrics"]["bits_per_dim"] == report["bits_per_dim"]
    assert card["training"]["data"]["unreadable_skipped"] == 1
    assert card["export"]["parity_batches"] == [1, 3, 64]

    graphs = sessions(tmp_path / "swatches")
    for n in (1, 3):
        mu, logvar = graphs["encoder"].run(None, {"image": np.random.rand(n, 3, 24, 32).astype(np.float32)})
        assert mu.shape == logvar.shape == (n, 4)
        (image,) = graphs["decoder"].run(None, {"z": np.random.randn(n, 4).astype(np.float32)})
        assert image.shape == (n, 3, 24, 32) and 0 <= image.min() and image.max() <= 1


def test_a_folder_without_classes_skips_sample_quality_and_exports_no_labels(tmp_path, folder_cache):
    folder = make_image_folder(tmp_path / "plain", classes=None, per_class=20)
    config = TrainConfig(
        data=str(folder),
        image_size="20",
        image_channels=1,
        resize="crop",
        background="0,0,0",
        test_fraction=0.3,
        **TINY,
    )
    run = train(config, tmp_path / "run", threads=1)
    report = evaluate_run(run, None, **CHEAP_EVAL)
    assert report["sample_quality"] == {"skipped": "no class labels"}
    assert "bits_per_dim" not in report  # bernoulli
    card = export_run(run, tmp_path / "plain-model", name="plain", version="0.0.1")
    assert "labels" not in card and card["image_shape"] == [1, 20, 20]
    assert card["preprocessing_options"] == {"background": [0, 0, 0], "resize": "crop"}


def test_a_spatial_latent_model_takes_and_gives_k_by_h_by_w_latents(tmp_path, colour_folder):
    config = TrainConfig(data=str(colour_folder), image_size="24x32", latent_channels=2, **TINY)
    run = train(config, tmp_path / "run", threads=1)
    report = evaluate_run(run, None, **CHEAP_EVAL)
    assert report["latent_dim"] == 2 * 6 * 8
    assert report["sample_quality"] == {"skipped": "no classifier given (evaluate --classifier)"}

    card = export_run(run, tmp_path / "spatial", name="spatial", version="0.0.1")
    assert card["latent_shape"] == [2, 6, 8] and card["latent_dim"] == 96
    assert card["graphs"]["decoder"]["inputs"] == {"z": ["N", 2, 6, 8]}
    assert card["graphs"]["encoder"]["outputs"]["mu"] == ["N", 2, 6, 8]
    graphs = sessions(tmp_path / "spatial")
    assert graphs["decoder"].get_inputs()[0].shape[1:] == [2, 6, 8]
    for n in (1, 3):
        mu, _ = graphs["encoder"].run(None, {"image": np.random.rand(n, 3, 24, 32).astype(np.float32)})
        assert mu.shape == (n, 2, 6, 8)
        (image,) = graphs["decoder"].run(None, {"z": np.random.randn(n, 2, 6, 8).astype(np.float32)})
        assert image.shape == (n, 3, 24, 32)


def torchrun(args: list[str], cache: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "VAE_DATA_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, "-m", "training", "train", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_torchrun_processes_train_then_resume_to_the_weights_of_an_uninterrupted_run(
    tmp_path, colour_folder, folder_cache
):
    options = ["--data", str(colour_folder), "--image-size", "24x32", "--likelihood", "gaussian", "--limit-train", "16"]
    options += ["--latent-dim", "4", "--channels", "8", "--hidden", "32", "--batch-size", "8", "--threads", "1"]
    options += ["--lr-final", "0.001"]  # a constant learning rate: extending --epochs leaves epoch 1 as it was
    torchrun(["--out", str(tmp_path / "cut"), *options, "--epochs", "1"], folder_cache)
    assert runs.load_checkpoint(tmp_path / "cut")["epoch"] == 1
    torchrun(["--out", str(tmp_path / "cut"), *options, "--epochs", "2", "--resume"], folder_cache)
    torchrun(["--out", str(tmp_path / "straight"), *options, "--epochs", "2"], folder_cache)

    resumed, straight = runs.load_checkpoint(tmp_path / "cut"), runs.load_checkpoint(tmp_path / "straight")
    assert resumed["epoch"] == 2 and len(resumed["process_streams"]) == 2
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=0)
    assert [m["epoch"] for m in runs.read_metrics(tmp_path / "cut")] == [1, 2]
