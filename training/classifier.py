"""A small CNN trained on the same dataset; its penultimate features score sample quality.

No downloaded weights (no Inception): the project trains this classifier itself, with a
fixed seed, so anyone can rerun the Fréchet distance and coverage figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from training.data import Dataset, to_tensor
from training.distributed import set_threads

WEIGHTS = "classifier.pt"
REPORT = "classifier.json"


class Classifier(nn.Module):
    def __init__(self, num_classes: int = 10, feature_dim: int = 128, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        channels, height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3),
            nn.Linear(64 * (height // 4) * (width // 4), feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, num_classes))
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@torch.no_grad()
def predict(model: Classifier, x: torch.Tensor, batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, predicted labels) for float images in [0, 1]."""
    model.eval()
    feats, labels = [], []
    for start in range(0, len(x), batch_size):
        f = model.features(x[start : start + batch_size])
        feats.append(f)
        labels.append(model.head(f).argmax(1))
    return torch.cat(feats), torch.cat(labels)


@torch.no_grad()
def label_probabilities(
    model: Classifier, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 2000
) -> torch.Tensor:
    """The probability the classifier gives each image's own label, [N]."""
    model.eval()
    probs = [model(x[s : s + batch_size]).softmax(1) for s in range(0, len(x), batch_size)]
    return torch.cat(probs).gather(1, labels[:, None].long())[:, 0]


def train_classifier(
    dataset: Dataset,
    out_dir: Path,
    epochs: int = 4,
    seed: int = 0,
    threads: int | None = None,
    limit_train: int | None = None,
) -> dict:
    if not dataset.classes:
        raise SystemExit(f"{dataset.name} has no class labels: a classifier needs images in class sub-folders")
    set_threads(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = to_tensor(dataset.train.images, limit_train)
    y = torch.from_numpy(dataset.train.labels[: len(x)]).long()
    model = Classifier(len(dataset.classes), image_shape=dataset.image_shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * ((len(x) + 127) // 128)
    )
    started = time.perf_counter()
    for _ in tqdm(range(epochs), unit="epoch", desc="classifier"):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 128):
            idx = order[start : start + 128]
            # Small random shifts make the features robust to the decoder's slight misplacements.
            batch = torch.roll(
                x[idx], shifts=tuple(torch.randint(-2, 3, (2,), generator=generator).tolist()), dims=(2, 3)
            )
            loss = F.cross_entropy(model(batch), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    _, predicted = predict(model, to_tensor(dataset.test.images))
    accuracy = (predicted.numpy() == dataset.test.labels).mean().item()
    report = {
        "dataset": dataset.name,
        "test_accuracy": round(accuracy, 4),
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - started, 1),
        "architecture": f"conv32-bn-pool, conv64-bn-pool, fc128 (features), fc{len(dataset.classes)}",
        "image_shape": list(dataset.image_shape),
        "class_names": list(dataset.classes),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / WEIGHTS)
    (out_dir / REPORT).write_text(json.dumps(report, indent=2))
    return report


def load_classifier(out_dir: Path) -> tuple[Classifier, dict]:
    """The classifier and its report; reports from before colour data imply MNIST's shape."""
    report = json.loads((out_dir / REPORT).read_text())
    image_shape = tuple(report.get("image_shape", (1, 28, 28)))
    model = Classifier(len(report.get("class_names", range(10))), image_shape=image_shape)
    model.load_state_dict(torch.load(out_dir / WEIGHTS, map_location="cpu", weights_only=True))
    model.eval()
    return model, report
