"""training/projection.py on tiny ONNX models (devtools.tiny_models): the latent map is the PCA of
every test image's encoder mean, a map position (u, v) is the latent mean + u * pc1 + v * pc2,
and the card names the file without any other change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from devtools.tiny_models import TinyVAE
from training.cards import sha256_file
from training.cli import app
from training.data import Dataset, Split, load_dataset
from training.projection import (
    PROJECTION_FILE,
    ProjectionDataMissing,
    compute_projection,
    latent_of_point,
    principal_plane,
    write_projection,
)

CLASSES = ("circle", "square", "star")


def model_folder(folder: Path, tiny: TinyVAE, *, training: dict | None = None, ensure_ascii: bool = True) -> Path:
    """A model folder as export leaves it: both graphs and a card naming them."""
    encoder, decoder = tiny.write(folder)
    card = {
        "schema_version": 1,
        "name": folder.name,
        "version": "0.0.1",
        "dataset": "shapes",
        "image_shape": list(tiny.image_shape),
        "latent_dim": tiny.latent_dim,
        "latent_shape": list(tiny.latent_shape),
        "likelihood": "bernoulli",
        "preprocessing": "fit",
        **({"tensors": {"encoder_output": tiny.split_output}} if tiny.split_output else {}),
        "files": {
            "encoder": {"path": encoder.name, "sha256": sha256_file(encoder)},
            "decoder": {"path": decoder.name, "sha256": sha256_file(decoder)},
        },
        "training": training or {"note": "Trained on nothing: a tiny graph with fixed weights, à la test."},
    }
    (folder / "model.json").write_text(json.dumps(card, indent=2, ensure_ascii=ensure_ascii) + "\n")
    return folder


def shapes_dataset(image_shape: tuple[int, int, int], n: int = 300, classes: tuple[str, ...] = CLASSES) -> Dataset:
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (n, *image_shape), dtype=np.uint8)
    labels = rng.integers(0, max(len(classes), 1), n).astype(np.int64)
    return Dataset("shapes", Split(images[:10], labels[:10]), Split(images, labels), classes)


def onnx_means(folder: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(folder / "encoder.onnx"), providers=["CPUExecutionProvider"])
    mu, _ = session.run(None, {"image": images.astype(np.float32) / 255})
    return mu.reshape(len(images), -1).astype(np.float64)


def test_the_map_is_the_pca_of_every_test_mean_and_a_point_is_the_mean_plus_u_pc1_plus_v_pc2(tmp_path):
    tiny = TinyVAE(image_shape=(1, 8, 8), latent_shape=(6,))
    folder = model_folder(tmp_path / "tiny", tiny)
    data = shapes_dataset(tiny.image_shape)
    projection = compute_projection(folder, data, points=120, seed=3)

    means = onnx_means(folder, data.test.images)
    mean, components = np.array(projection["mean"]), np.array(projection["components"])
    np.testing.assert_allclose(mean, means.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(components @ components.T, np.eye(2), atol=1e-6)  # unit and orthogonal
    # The two directions of largest spread: the same plane as an SVD's first two right vectors.
    _, singular, right = np.linalg.svd(means - means.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(np.abs(components @ right[:2].T), np.eye(2), atol=1e-5)
    variance = singular**2 / (len(means) - 1)
    np.testing.assert_allclose(projection["explained_variance"], variance[:2], rtol=1e-4)
    np.testing.assert_allclose(projection["explained_variance_ratio"], variance[:2] / variance.sum(), atol=1e-4)
    for component in components:
        assert component[np.argmax(np.abs(component))] > 0  # latent.js pca2's sign rule

    indices = projection["point_indices"]
    assert len(indices) == len(projection["points"]) == 120 and indices == sorted(set(indices))
    uv = (means[indices] - mean) @ components.T
    np.testing.assert_allclose(projection["points"], uv, atol=1e-4)
    assert projection["labels"] == list(CLASSES)
    assert projection["point_labels"] == data.test.labels[indices].tolist()
    # Decoding a point's (u, v) means decoding the plane's point nearest to that image's mean.
    u, v = projection["points"][0]
    z = latent_of_point(projection, u, v)
    np.testing.assert_allclose(z, mean + (means[indices[0]] - mean) @ components.T @ components, atol=1e-3)
    assert projection["test_images"] == 300 and projection["encoder_sha256"] == sha256_file(folder / "encoder.onnx")


def test_with_a_two_dimensional_latent_the_map_is_the_whole_latent_space_and_inverts_exactly(tmp_path):
    tiny = TinyVAE(image_shape=(1, 8, 8), latent_shape=(2,))
    folder = model_folder(tmp_path / "two", tiny)
    data = shapes_dataset(tiny.image_shape)
    projection = compute_projection(folder, data)
    means = onnx_means(folder, data.test.images)
    assert sum(projection["explained_variance_ratio"]) == pytest.approx(1, abs=1e-3)
    for (u, v), index in zip(projection["points"][:20], projection["point_indices"], strict=False):
        np.testing.assert_allclose(latent_of_point(projection, u, v), means[index], atol=1e-3)


def test_a_spatial_latent_and_a_joint_encoder_output_are_mapped_in_the_cards_latent_shape(tmp_path):
    tiny = TinyVAE(image_shape=(3, 6, 5), latent_shape=(2, 2, 3), split_output="stats")
    folder = model_folder(tmp_path / "spatial", tiny)
    projection = compute_projection(folder, shapes_dataset(tiny.image_shape, n=40), points=10)
    assert projection["latent_shape"] == [2, 2, 3]
    assert len(projection["mean"]) == 12 and [len(c) for c in projection["components"]] == [12, 12]
    assert latent_of_point(projection, 0.5, -1).shape == (2, 2, 3)


def test_the_points_are_a_seeded_draw_and_all_of_a_small_test_set(tmp_path):
    tiny = TinyVAE(image_shape=(1, 8, 8), latent_shape=(4,))
    folder = model_folder(tmp_path / "seeded", tiny)
    data = shapes_dataset(tiny.image_shape, n=200)
    first, again = (compute_projection(folder, data, points=50, seed=0) for _ in range(2))
    assert first["point_indices"] == again["point_indices"] and first["points"] == again["points"]
    assert compute_projection(folder, data, points=50, seed=1)["point_indices"] != first["point_indices"]
    assert compute_projection(folder, data, points=5000)["point_indices"] == list(range(200))
    unlabelled = compute_projection(folder, shapes_dataset(tiny.image_shape, n=200, classes=()))
    assert unlabelled["labels"] is None and unlabelled["point_labels"] is None


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_the_card_gains_files_projection_and_keeps_every_other_byte(tmp_path, ensure_ascii):
    tiny = TinyVAE(image_shape=(1, 8, 8), latent_shape=(4,))
    folder = model_folder(tmp_path / "card", tiny, ensure_ascii=ensure_ascii)
    before = (folder / "model.json").read_text()
    write_projection(folder, shapes_dataset(tiny.image_shape))

    after = (folder / "model.json").read_text()
    card = json.loads(after)
    assert card["files"]["projection"] == {"path": PROJECTION_FILE, "sha256": sha256_file(folder / PROJECTION_FILE)}
    del card["files"]["projection"]
    assert json.dumps(card, indent=2, ensure_ascii=ensure_ascii) + "\n" == before
    assert ("à la" in after) is not ensure_ascii
    stored = json.loads((folder / PROJECTION_FILE).read_text())
    assert stored["schema_version"] == 1 and stored["kind"] == "pca" and stored["model"] == "card"


def test_the_project_command_maps_the_test_set_that_the_cards_training_config_names(tmp_path):
    tiny = TinyVAE(image_shape=(1, 28, 28), latent_shape=(3,))
    config = {"dataset": "mnist", "limit_test": 200, "image_shape": [1, 28, 28]}
    folder = model_folder(tmp_path / "digits", tiny, training={"config": config})
    result = CliRunner().invoke(app, ["project", str(folder), "--points", "50", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "50 of 200 test images" in result.output

    projection = json.loads((folder / PROJECTION_FILE).read_text())
    assert projection["test_images"] == 200 and len(projection["points"]) == 50
    assert projection["labels"] == [str(digit) for digit in range(10)]
    labels = load_dataset("mnist").test.labels
    assert projection["point_labels"] == labels[projection["point_indices"]].tolist()
    assert projection["command"].endswith(f"{folder} --points 50")


def test_a_card_without_a_training_config_cannot_be_mapped_without_its_data(tmp_path):
    tiny = TinyVAE(image_shape=(1, 8, 8), latent_shape=(4,))
    folder = model_folder(tmp_path / "packaged", tiny)
    with pytest.raises(ProjectionDataMissing, match="no training.config"):
        compute_projection(folder)
    result = CliRunner().invoke(app, ["project", str(folder)])
    assert result.exit_code != 0 and "no training.config" in result.output
    assert not (folder / PROJECTION_FILE).exists()


def test_the_plane_of_a_one_dimensional_latent_has_a_zero_second_component():
    plane = principal_plane(np.array([[1.0], [3.0], [2.0]]))
    np.testing.assert_allclose(plane.components, [[1.0], [0.0]])
    assert plane.variances.tolist() == [1.0, 0.0]
    np.testing.assert_allclose(plane.latent(1.5, 7.0), [3.5])
