"""Typed results. Image results hold float32 arrays [N, C, H, W] with pixels in [0, 1], in the
model's image shape (C = 1 grayscale or 3 RGB); latents are [N, *latent_shape] ([N, D] for a flat
latent, [N, C', h, w] for a spatial one)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._images import channels_last, encode_png, grid, npy_bytes, require_pillow, to_uint8

__all__ = [
    "ImageResult",
    "SampleResult",
    "DecodeResult",
    "ReconstructResult",
    "WalkResult",
    "TraverseResult",
    "EncodeResult",
    "ImageScore",
    "ScoreTable",
    "ScoreResult",
    "ModelInfo",
    "ModelLimits",
    "ModelList",
    "Health",
    "Readiness",
]


# eq=False: dataclass equality on ndarrays would raise "truth value is ambiguous".
@dataclass(frozen=True, eq=False, kw_only=True)
class ImageResult:
    """Images [N, C, H, W] from the service and the model that made them (its latent shape too)."""

    images: np.ndarray
    model: str | None = None
    latent_dim: int | None = None
    latent_shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """[C, H, W] of one image."""
        return tuple(self.images.shape[1:])

    def to_pil(self) -> list[Any]:
        """One 8-bit PIL image per row: mode "L" for grayscale models, "RGB" for colour (needs Pillow)."""
        image_module = require_pillow("to_pil()")
        return [image_module.fromarray(np.ascontiguousarray(pixels)) for pixels in channels_last(to_uint8(self.images))]

    def grid(self, padding: int = 2) -> np.ndarray:
        """uint8 grid of all images laid out like the service's PNG output: [H, W], or [H, W, 3] for colour."""
        return grid(self.images, padding=padding)

    def save_grid(self, path: str | os.PathLike[str], padding: int = 2) -> Path:
        """Write all images as one PNG grid, RGB for colour models (works without Pillow); returns the path."""
        target = Path(path)
        target.write_bytes(encode_png(self.grid(padding=padding)))
        return target

    def save_npy(self, path: str | os.PathLike[str]) -> Path:
        """Write the float32 [N, C, H, W] array as `.npy`; returns the path."""
        target = Path(path)
        target.write_bytes(npy_bytes(self.images))
        return target


@dataclass(frozen=True, eq=False, kw_only=True)
class SampleResult(ImageResult):
    """Images drawn from the prior by `/sample`.

    `prior` and `label` are what was asked for (None: the model card's `prior.default`, no
    class). `latents` is None: the binary `/sample` answer carries only the images. To keep
    latents, draw them yourself and call `decode()`.
    """

    seed: int | None = None
    temperature: float = 1.0
    prior: str | None = None
    label: str | int | None = None
    latents: np.ndarray | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class DecodeResult(ImageResult):
    """Images decoded from `latents`: what was sent, as float32 [N, *latent_shape]."""

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
    """Posterior parameters for each uploaded image, in upload order: arrays [N, *latent_shape]
    ([N, D] for a flat latent, [N, C', h, w] for a spatial one)."""

    mu: np.ndarray
    logvar: np.ndarray
    z: np.ndarray | None = None
    model: str | None = None
    latent_dim: int | None = None
    latent_shape: tuple[int, ...] | None = None
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
class ImageScore:
    """`/score`'s figures for one image. Nats unless the name says bits.

    `neg_elbo` = `reconstruction` + `kl`; `nll` is the importance-sampled -log p(x) (k samples,
    at most `neg_elbo`); `bits_per_dim` is `nll` in bits per pixel value; `complexity_bits` the
    model input's length as a PNG and `complexity_corrected` `neg_elbo` in bits minus it.
    `percentile` (share of the model's test set with a `neg_elbo` at most this one),
    `outlier_score` (0..100) and `outlier` are None for a model without a test-set table.
    `filename` names the upload (None for in-memory images).
    """

    filename: str | None
    neg_elbo: float
    reconstruction: float
    kl: float
    nll: float
    bits_per_dim: float
    complexity_bits: float
    complexity_corrected: float
    percentile: float | None = None
    outlier_score: float | None = None
    outlier: bool | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any], filename: str | None) -> ImageScore:
        def optional(name: str) -> float | None:
            value = body.get(name)
            return None if value is None else float(value)

        outlier = body.get("outlier")
        return cls(
            filename=filename,
            neg_elbo=float(body["neg_elbo"]),
            reconstruction=float(body["reconstruction"]),
            kl=float(body["kl"]),
            nll=float(body["nll"]),
            bits_per_dim=float(body["bits_per_dim"]),
            complexity_bits=float(body["complexity_bits"]),
            complexity_corrected=float(body["complexity_corrected"]),
            percentile=optional("percentile"),
            outlier_score=optional("outlier_score"),
            outlier=None if outlier is None else bool(outlier),
        )

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SCORE_FIELDS}


#: The fields of one `/score` result, in the service's order.
SCORE_FIELDS = (
    "filename",
    "neg_elbo",
    "reconstruction",
    "kl",
    "nll",
    "bits_per_dim",
    "complexity_bits",
    "complexity_corrected",
    "percentile",
    "outlier_score",
    "outlier",
)


@dataclass(frozen=True, kw_only=True)
class ScoreTable:
    """How the model's test-set table (the percentiles' reference) was made: `images` scored with
    `k` importance samples under `prior`, by `command` when the card names it."""

    images: int
    k: int
    prior: str
    command: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ScoreTable:
        return cls(images=int(body["images"]), k=int(body["k"]), prior=str(body["prior"]), command=body.get("command"))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"images": self.images, "k": self.k, "prior": self.prior}
        return body if self.command is None else {**body, "command": self.command}


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    """`/score`: how likely each image is under the model, in upload order (`results`).

    `k` importance samples per image drawn from `seed` (every image shares them, so an image's
    scores do not depend on what it was sent with); `prior` is the p(z) the scores use (the
    card's `prior.default`). `table` describes the test-set table behind `percentile` and
    `outlier`, None when the model has none; an image is an `outlier` when its `outlier_score`
    is above `outlier_percentile` (the service's VAE_OUTLIER_PERCENTILE).
    """

    results: list[ImageScore]
    model: str | None = None
    k: int = 64
    seed: int = 0
    prior: str | None = None
    outlier_percentile: float | None = None
    table: ScoreTable | None = None

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[ImageScore]:
        return iter(self.results)

    def __getitem__(self, index: int) -> ImageScore:
        return self.results[index]

    @property
    def filenames(self) -> list[str | None]:
        return [result.filename for result in self.results]

    def column(self, name: str) -> np.ndarray:
        """One figure of every image as float64 [N] (NaN where it is None; outlier as 0/1)."""
        if name not in SCORE_FIELDS or name == "filename":
            raise KeyError(f"no score {name!r}; one of {', '.join(SCORE_FIELDS[1:])}")
        values = [getattr(result, name) for result in self.results]
        return np.array([np.nan if value is None else float(value) for value in values], dtype=np.float64)

    @property
    def neg_elbo(self) -> np.ndarray:
        """-ELBO of every image, float64 [N] nats."""
        return self.column("neg_elbo")

    @property
    def nll(self) -> np.ndarray:
        """Importance-sampled -log p(x) of every image, float64 [N] nats."""
        return self.column("nll")

    @property
    def bits_per_dim(self) -> np.ndarray:
        return self.column("bits_per_dim")

    @property
    def outliers(self) -> list[bool | None]:
        return [result.outlier for result in self.results]

    def to_json(self) -> dict[str, Any]:
        """The `/score` body this was read from (results joined, when sent as several requests)."""
        return {
            "model": self.model,
            "k": self.k,
            "seed": self.seed,
            "prior": self.prior,
            "outlier_percentile": self.outlier_percentile,
            "table": None if self.table is None else self.table.to_json(),
            "results": [result.to_json() for result in self.results],
        }


@dataclass(frozen=True, kw_only=True)
class ModelLimits:
    """What one request to a model may ask for, and its batch and queue sizes in rows per graph."""

    max_sample_n: int
    max_upload_images: int
    batch_rows: dict[str, int] = field(default_factory=dict)
    queue_rows: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ModelLimits:
        return cls(
            max_sample_n=int(body["max_sample_n"]),
            max_upload_images=int(body["max_upload_images"]),
            batch_rows=dict(body.get("batch_rows") or {}),
            queue_rows=dict(body.get("queue_rows") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_rows": self.batch_rows,
            "queue_rows": self.queue_rows,
            "max_sample_n": self.max_sample_n,
            "max_upload_images": self.max_upload_images,
        }


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """One served model: its card (model.json), image and latent shapes, class labels, request
    limits, and its ONNX graph signatures.

    `image_shape` is [C, H, W] (C = 1 grayscale, 3 RGB); `latent_shape` [D] or [C', h, w].
    From a server older than these fields they come from the card and the graph signatures
    (None when neither says), and `limits` is None.
    """

    name: str
    card: dict[str, Any]
    provider: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, ...] | None = None
    latent_shape: tuple[int, ...] | None = None
    labels: list[str] | None = None
    limits: ModelLimits | None = None

    @property
    def latent_dim(self) -> int | None:
        """Values in one latent: the product of `latent_shape`."""
        if self.latent_shape is not None:
            return math.prod(self.latent_shape)
        return self.card.get("latent_dim")

    @property
    def channels(self) -> int | None:
        """1 for grayscale models, 3 for RGB."""
        return self.image_shape[0] if self.image_shape else None

    @property
    def dataset(self) -> str | None:
        return self.card.get("dataset")

    @property
    def version(self) -> str | None:
        return self.card.get("version")

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ModelInfo:
        card = body.get("card") or {}
        inputs = body.get("inputs") or {}
        limits = body.get("limits")
        latent_fallback = card.get("latent_shape") or ([card["latent_dim"]] if card.get("latent_dim") else None)
        return cls(
            name=body["name"],
            card=card,
            provider=body.get("provider"),
            inputs=inputs,
            outputs=body.get("outputs") or {},
            image_shape=_shape(body.get("image_shape") or card.get("image_shape") or _graph_input(inputs, "encoder")),
            latent_shape=_shape(body.get("latent_shape") or latent_fallback or _graph_input(inputs, "decoder")),
            labels=body.get("labels", card.get("labels")),
            limits=ModelLimits.from_json(limits) if limits else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The `GET /models/{name}` body this was read from (as far as it is known)."""
        return {
            "name": self.name,
            "card": self.card,
            "provider": self.provider,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "latent_shape": None if self.latent_shape is None else list(self.latent_shape),
            "labels": self.labels,
            "limits": None if self.limits is None else self.limits.to_json(),
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


def _shape(dims: Any) -> tuple[int, ...] | None:
    """A list of sizes as a tuple of ints; None unless every size is a positive int."""
    if not isinstance(dims, (list, tuple)) or not dims:
        return None
    if not all(isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 for dim in dims):
        return None
    return tuple(dims)


def _graph_input(inputs: Mapping[str, Any], graph: str) -> list[Any] | None:
    """Per-row shape of a graph's only input, from `inputs` {"encoder": {"image": ["N", 1, 28, 28]}}."""
    tensors = inputs.get(graph)
    if not isinstance(tensors, Mapping) or len(tensors) != 1:
        return None
    (dims,) = tensors.values()
    return list(dims[1:]) if isinstance(dims, list) and len(dims) > 1 else None


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


@dataclass(frozen=True, eq=False, kw_only=True)
class WalkResult(ImageResult):
    """The frames of `/interpolate`, endpoints included: images [steps, C, H, W]."""

    method: str = "linear"

    def save_animation(self, path: str | os.PathLike[str], frame_ms: int = 120) -> Path:
        """Write the walk as an animated GIF or WebP (by the suffix) playing forward and back (needs Pillow)."""
        image_module = require_pillow("save_animation()")
        frames = [image_module.fromarray(np.ascontiguousarray(p)) for p in channels_last(to_uint8(self.images))]
        frames += frames[-2:0:-1]
        target = Path(path)
        fmt = "WEBP" if target.suffix.lower() == ".webp" else "GIF"
        frames[0].save(target, format=fmt, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
        return target


@dataclass(frozen=True, eq=False, kw_only=True)
class TraverseResult(ImageResult):
    """`/traverse`: images [dims * steps, C, H, W], row r sweeping latent dimension `dims[r]`
    over [-span, span] (`grid()` and `save_grid()` lay out one row per dimension)."""

    dims: list[int] = field(default_factory=list)
    span: float = 3.0

    @property
    def steps(self) -> int:
        return len(self.images) // max(len(self.dims), 1)

    def grid(self, padding: int = 2) -> np.ndarray:
        return grid(self.images, padding=padding, cols=self.steps)
