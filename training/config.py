"""Typed training configuration; saved next to every run as config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from training.model import Architecture, Likelihood

DatasetName = Literal["mnist", "fashion-mnist"]


@dataclass
class TrainConfig:
    dataset: DatasetName = "mnist"
    likelihood: Likelihood = "bernoulli"
    latent_dim: int = 32
    channels: int = 32
    hidden: int = 512
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    lr_final: float = 1e-4  # cosine decay from lr to lr_final over the run
    beta: float = 1.0  # KL weight
    kl_warmup_epochs: int = 0  # beta ramps linearly from 0 over these epochs
    seed: int = 0
    limit_train: int | None = None  # use only the first N training images (tests, smoke runs)
    limit_test: int | None = None
    image_shape: tuple[int, int, int] = field(default=(1, 28, 28))

    def architecture(self) -> Architecture:
        return Architecture(
            image_shape=tuple(self.image_shape),
            latent_dim=self.latent_dim,
            channels=self.channels,
            hidden=self.hidden,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        data["image_shape"] = tuple(data.get("image_shape", (1, 28, 28)))
        return cls(**data)
