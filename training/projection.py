"""The latent map: the test set's encoder means on their first two principal components, stored
as models/<name>/projection.json and named in the card's `files.projection` (docs/model-card.md).

A map position (u, v) is the latent  mean + u * components[0] + v * components[1]  (flat, D
values; reshape to the card's latent_shape): the point of the PCA plane at those coordinates, so
any position decodes, not only the stored points. An image's own coordinates are
u = (mu - mean) . components[0] and v = (mu - mean) . components[1]; decoding them gives the
plane's point nearest to mu, which leaves out mu's residual off the plane (the share of variance
the two components do not explain).

The means come from the model folder's encoder.onnx under onnxruntime (what the service serves),
fed pixels / 255 as the service feeds it; no torch.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort

from training.cards import add_to_card
from training.config import TrainConfig
from training.data import Dataset, DataSourceMissing, Split, load_data
from training.folder_data import ImageFolderError

log = logging.getLogger("training.projection")

PROJECTION_FILE = "projection.json"
PROJECTION_SCHEMA_VERSION = 1
MAP_POINTS = 2000  # test images drawn on the map; all of them when the test set is smaller
MAP_SEED = 0
ENCODE_BATCH = 256
REPO_ROOT = Path(__file__).resolve().parent.parent


class ProjectionDataMissing(RuntimeError):
    """The test set the card names cannot be read here (a built-in source not installed, a moved folder)."""


@dataclass(frozen=True)
class Plane:
    """The two leading principal directions of a set of latents (flat, D values each)."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (2, D), orthonormal; zeros for pc2 when D == 1
    variances: np.ndarray  # (2,), the latents' variance along each component (ddof 1)
    total_variance: float  # the trace of their covariance

    def coordinates(self, latents: np.ndarray) -> np.ndarray:
        """(N, D) latents -> (N, 2) map coordinates (u, v)."""
        return (latents - self.mean) @ self.components.T

    def latent(self, u: float, v: float) -> np.ndarray:
        """The map position (u, v) as a latent: mean + u * pc1 + v * pc2."""
        return self.mean + u * self.components[0] + v * self.components[1]


def principal_plane(latents: np.ndarray) -> Plane:
    """PCA by the eigenvectors of the covariance (float64); each component's largest |entry| is
    positive, the playground's own pca2 (latent.js) rule, so a map never flips between runs."""
    if len(latents) < 2:
        raise ValueError(f"a projection needs at least 2 latents, got {len(latents)}")
    values = np.asarray(latents, np.float64)
    mean = values.mean(axis=0)
    centred = values - mean
    covariance = centred.T @ centred / (len(values) - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(eigenvalues)[::-1][:2]
    components = np.zeros((2, values.shape[1]))
    variances = np.zeros(2)
    for row, index in enumerate(order):
        vector = eigenvectors[:, index]
        components[row] = vector if vector[np.argmax(np.abs(vector))] > 0 else -vector
        variances[row] = max(float(eigenvalues[index]), 0.0)
    return Plane(mean, components, variances, float(np.trace(covariance)))


def encode_means(
    encoder_path: Path, images: np.ndarray, card: dict, *, threads: int | None = None, batch: int = ENCODE_BATCH
) -> np.ndarray:
    """uint8 images (N, H, W) or (N, C, H, W) -> (N, D) encoder means, through onnxruntime."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(encoder_path), options, providers=["CPUExecutionProvider"])
    tensors = card.get("tensors") or {}
    input_name = tensors.get("encoder_input", "image")
    joint = tensors.get("encoder_output")  # one output holding mu and logvar along axis 1
    output_name = joint or tensors.get("mu", "mu")
    means = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch].astype(np.float32) / 255.0
        chunk = chunk[:, None] if chunk.ndim == 3 else chunk
        (out,) = session.run([output_name], {input_name: chunk})
        if joint:
            out = out[:, : out.shape[1] // 2]
        means.append(out.reshape(len(chunk), -1))
    return np.concatenate(means).astype(np.float64)


def card_test_split(card: dict) -> tuple[Split, tuple[str, ...]]:
    """The test split the card's training config names (its --data folder or built-in dataset,
    limit_test applied) and its class names; a relative folder is found from here or the repository."""
    config_dict = (card.get("training") or {}).get("config")
    if not config_dict:
        raise ProjectionDataMissing(
            f"model {card.get('name')!r}: the card has no training.config naming its data (a packaged model?)"
        )
    config = TrainConfig.from_dict(config_dict)
    if config.data and not Path(config.data).is_absolute() and not Path(config.data).exists():
        config = replace(config, data=str(REPO_ROOT / config.data))
    try:
        dataset = load_data(config)
    except (DataSourceMissing, ImageFolderError, FileNotFoundError) as error:
        raise ProjectionDataMissing(f"model {card.get('name')!r}: its test set cannot be read: {error}") from error
    return _limited(dataset, config.limit_test), dataset.classes


def _limited(dataset: Dataset, limit: int | None) -> Split:
    test = dataset.test
    return Split(test.images[:limit], test.labels[:limit]) if limit else test


def _shown(path: Path) -> str:
    """A path as a command would name it: relative to the working folder where it lies inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else str(path)


def _figures(values: np.ndarray, digits: int) -> list:
    """Floats with `digits` significant figures, for a JSON file that stays small and exact enough."""
    return [float(f"{x:.{digits}g}") for x in np.asarray(values, np.float64).ravel()]


def compute_projection(
    model_dir: Path,
    dataset: Dataset | None = None,
    *,
    points: int = MAP_POINTS,
    seed: int = MAP_SEED,
    threads: int | None = None,
) -> dict:
    """projection.json's content for the model in model_dir: the PCA of every test image's encoder
    mean, and the map coordinates of `points` of them drawn with `seed`. `dataset`: its test split
    instead of the one the card's training config names."""
    started = time.perf_counter()
    card = json.loads((model_dir / "model.json").read_text())
    if dataset is not None:
        test, classes = dataset.test, dataset.classes
    else:
        test, classes = card_test_split(card)
    labels = list(classes) or None  # the test set's class names; none: points without a class
    if labels and card.get("labels") and card["labels"] != labels:
        raise ValueError(f"{model_dir}: the card's labels {card['labels']} differ from the test set's classes {labels}")
    image_shape = list(card["image_shape"])
    shape = [1, *test.images.shape[1:]] if test.images.ndim == 3 else list(test.images.shape[1:])
    if shape != image_shape:
        raise ValueError(f"{model_dir}: test images are {shape}, the card's image_shape is {image_shape}")

    means = encode_means(model_dir / card["files"]["encoder"]["path"], test.images, card, threads=threads)
    plane = principal_plane(means)
    rng = np.random.default_rng(seed)
    drawn = np.sort(rng.choice(len(means), size=min(points, len(means)), replace=False))
    uv = plane.coordinates(means[drawn])
    total = plane.total_variance or 1.0
    return {
        "schema_version": PROJECTION_SCHEMA_VERSION,
        "model": card["name"],
        "dataset": card.get("dataset"),
        "kind": "pca",
        "latent_shape": list(card.get("latent_shape") or [card["latent_dim"]]),
        "mean": _figures(plane.mean, 8),
        "components": [_figures(c, 8) for c in plane.components],
        "explained_variance": _figures(plane.variances, 6),
        "explained_variance_ratio": _figures(plane.variances / total, 4),
        "labels": labels,
        "points": [[round(float(u), 4), round(float(v), 4)] for u, v in uv],
        "point_labels": [int(x) for x in test.labels[drawn]] if labels else None,
        "point_indices": [int(i) for i in drawn],
        "method": {
            "means": f"encoder mu of all {len(means)} test images (pixels / 255), {card['files']['encoder']['path']} "
            "under onnxruntime",
            "basis": "the two leading eigenvectors of the means' covariance (ddof 1, float64), each with its "
            "largest |entry| positive",
            "points": f"{len(drawn)} of the {len(means)} test images, numpy default_rng({seed}).choice without "
            "replacement, in test-set order",
            "latent_of_point": "z = mean + u * components[0] + v * components[1], reshaped to latent_shape",
        },
        "test_images": len(means),
        "encoder_sha256": card["files"]["encoder"]["sha256"],
        "seed": seed,
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__},
        "command": f"python -m training project {_shown(model_dir)}"
        + (f" --points {points}" if points != MAP_POINTS else "")
        + (f" --seed {seed}" if seed != MAP_SEED else ""),
    }


def projection_text(projection: dict) -> str:
    """One top-level key a line, each value compact: small, and a diff still names what changed."""
    lines = [f"  {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}" for key, value in projection.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_projection(
    model_dir: Path,
    dataset: Dataset | None = None,
    *,
    points: int = MAP_POINTS,
    seed: int = MAP_SEED,
    threads: int | None = None,
) -> dict:
    """Compute the projection, write model_dir/projection.json and name it in the card; returns it."""
    projection = compute_projection(model_dir, dataset, points=points, seed=seed, threads=threads)
    path = model_dir / PROJECTION_FILE
    path.write_text(projection_text(projection))
    add_to_card(model_dir, "projection", path)
    ratio = projection["explained_variance_ratio"]
    log.info(
        "%s: %d of %d test means mapped; pc1 and pc2 explain %.1f%% and %.1f%% of their variance",
        path,
        len(projection["points"]),
        projection["test_images"],
        100 * ratio[0],
        100 * ratio[1],
    )
    return projection


def latent_of_point(projection: dict, u: float, v: float) -> np.ndarray:
    """A map position as a latent of the projection's latent_shape, as the playground decodes it."""
    mean, (pc1, pc2) = np.asarray(projection["mean"]), np.asarray(projection["components"])
    return (mean + u * pc1 + v * pc2).reshape(projection["latent_shape"])
