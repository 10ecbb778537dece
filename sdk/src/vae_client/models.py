"""Typed results. Image results hold float32 arrays [N, 1, 28, 28] with pixels in [0, 1]."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._images import encode_png, grid, npy_bytes, require_pillow, to_uint8

__all__ = [
    "ImageResult",
    "SampleResult",
    "DecodeResult",
    "ReconstructResult",
    "EncodeResult",
    "ModelInfo",
    "ModelList",
    "Health",
    "Readiness",
]


# eq=False: dataclass equality on ndarrays would raise "truth value is ambiguous".
@dataclass(frozen=True, eq=False, kw_only=True)
class ImageResult:
    """Images from the service and the model that made them."""

    images: np.ndarray
    model: str | None = None
    latent_dim: int | None = None

    def __len__(self) -> int:
        return len(self.images)

    def to_pil(self) -> list[Any]:
        """One 8-bit grayscale PIL image per row (needs Pillow)."""
        image_module = require_pillow("to_pil()")
        return [image_module.fromarray(to_uint8(image[0])) for image in self.images]

    def grid(self, padding: int = 2) -> np.ndarray:
        """uint8 grid of all images laid out like the service's PNG output."""
        return grid(self.images, padding=padding)

    def save_grid(self, path: str | os.PathLike[str], padding: int = 2) -> Path:
        """Write all images as one PNG grid (works without Pillow); returns the path."""
        target = Path(path)
        target.write_bytes(encode_png(self.grid(padding=padding)))
        return target

    def save_npy(self, path: str | os.PathLike[str]) -> Path:
        """Write the float32 [N, 1, H, W] array as `.npy`; returns the path."""
        target = Path(path)
        target.write_bytes(npy_bytes(self.images))
        return target


@dataclass(frozen=True, eq=False, kw_only=True)
class SampleResult(ImageResult):
    """Images drawn from the prior by `/sample`.

    `latents` is None: the binary `/sample` answer carries only the images. To keep latents,
    draw them yourself and call `decode()`.
    """

    seed: int | None = None
    temperature: float = 1.0
    latents: np.ndarray | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class DecodeResult(ImageResult):
    """Images decoded from `latents` (float32 [N, D], as sent)."""

    latents: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class ReconstructResult(ImageResult):
    """Reconstructions of uploaded images, in upload order.

    `filenames` names each upload (None for in-memory images). `latents` is None: the binary
    `/reconstruct` answer carries only the images; call `encode()` for the latent codes.
    """

    filenames: list[str | None] = field(default_factory=list)
    latents: np.ndarray | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class EncodeResult:
    """Posterior parameters for each uploaded image, in upload order: arrays [N, D]."""

    mu: np.ndarray
    logvar: np.ndarray
    z: np.ndarray | None = None
    model: str | None = None
    latent_dim: int | None = None
    filenames: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.mu)

    @property
    def latents(self) -> np.ndarray:
        """What to hand to `decode()`: the sample `z` when one was drawn, else the mean `mu`."""
        return self.z if self.z is not None else self.mu

    @property
    def std(self) -> np.ndarray:
        """Posterior standard deviation, exp(logvar / 2)."""
        return np.exp(0.5 * self.logvar)


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """One served model: its card (model.json) and its ONNX graph signatures."""

    name: str
    card: dict[str, Any]
    provider: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def latent_dim(self) -> int | None:
        return self.card.get("latent_dim")

    @property
    def dataset(self) -> str | None:
        return self.card.get("dataset")

    @property
    def version(self) -> str | None:
        return self.card.get("version")

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ModelInfo:
        return cls(
            name=body["name"],
            card=body.get("card") or {},
            provider=body.get("provider"),
            inputs=body.get("inputs") or {},
            outputs=body.get("outputs") or {},
        )


@dataclass(frozen=True, kw_only=True)
class ModelList:
    """`GET /models`: the default model's name and every served model."""

    default: str
    models: list[ModelInfo]

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __getitem__(self, name: str) -> ModelInfo:
        for info in self.models:
            if info.name == name:
                return info
        raise KeyError(f"no model {name!r}; served: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [info.name for info in self.models]


@dataclass(frozen=True, kw_only=True)
class Health:
    """`GET /health`: the process is alive."""

    status: str


@dataclass(frozen=True, kw_only=True)
class Readiness:
    """`GET /ready`; truthy once every model is loaded and warmed up.

    When not ready, `code` is `not_ready` or `shutting_down` and `message` says why.
    """

    ready: bool
    status: str
    models: list[str] = field(default_factory=list)
    code: str | None = None
    message: str | None = None

    def __bool__(self) -> bool:
        return self.ready
