"""Typed training configuration: every default and choice defined once, saved as config.json.

Each field's `help` makes it a `train --option` (training/cli.py builds the options from these
fields); a `Literal` field is checked against its choices here, whoever builds the config.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

from training.model import VAE, Architecture, GaussianScale, Likelihood

DatasetName = Literal["mnist", "fashion-mnist"]
ImageChannels = Literal[1, 3]
ResizeMode = Literal["pad", "crop"]
MIN_SIDE, MAX_SIDE = 8, 512
FOLDER_DEFAULT_SIZE = "32"
FOLDER_DEFAULT_CHANNELS = 3


def option(default, help: str):
    """A config field that is also a `train` command-line option."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    dataset: DatasetName = option("mnist", "built-in dataset (ignored with --data)")
    data: str | None = option(None, "folder of images (PNG, JPEG, WebP); sub-folder names are class labels")
    image_size: str | None = option(None, f"--data only: H or HxW in pixels (default {FOLDER_DEFAULT_SIZE})")
    image_channels: ImageChannels | None = option(
        None, f"--data only: 1 (grey) or 3 (RGB) (default {FOLDER_DEFAULT_CHANNELS})"
    )
    resize: ResizeMode = option("pad", "--data only: fit each image inside (pad) or cover and centre-crop (crop)")
    background: str = option("255,255,255", "--data only: R,G,B that transparent pixels and padding become")
    test_fraction: float = option(0.1, "--data only: share held out as the test set (by file path hash)")
    likelihood: Likelihood = option("bernoulli", "p(x|z)")
    gaussian_scale: GaussianScale | None = option(
        None,
        "gaussian only: fixed sigma^2 = 1/2 (the default for built-in datasets), or learned: one sigma per "
        "channel on dequantized pixels, reported in bits/dim (the default for --data)",
    )
    latent_dim: int = option(32, "size of z (ignored with --latent-channels)")
    latent_channels: int | None = option(None, "K: a spatial latent [K, h, w] at the encoder's lowest resolution")
    channels: int = option(32, "filters of the second convolution stage (the first has half, later ones double)")
    hidden: int = option(512, "width of the fully connected layer next to a flat latent")
    epochs: int = option(100, "epochs in the schedule (--resume may extend it)")
    batch_size: int = option(128, "images per optimiser step, over all processes")
    lr: float = option(1e-3, "initial Adam learning rate")
    lr_final: float = option(1e-4, "learning rate at the end of the cosine decay")
    beta: float = option(1.0, "KL weight")
    kl_warmup_epochs: int = option(0, "beta ramps linearly from 0 over these epochs")
    grad_clip: float | None = option(None, "clip each step's gradient norm to this (default: no clipping)")
    iw_samples: int = option(
        1, "importance samples per image: above 1, train on the IWAE bound with doubly reparameterised gradients"
    )
    init_from: str | None = option(None, "start from the weights of this run or model folder (same architecture)")
    seed: int = option(0, "seeds weights, shuffling and noise")
    limit_train: int | None = option(None, "use only the first N training images (tests, smoke runs)")
    limit_test: int | None = option(None, "use only the first N test images")
    # Derived from the data when training starts; not an option.
    image_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        check_choices(self)
        if self.data is None:
            folder_only = ("image_size", "image_channels", "resize", "background", "test_fraction")
            changed = [f"--{name.replace('_', '-')}" for name in folder_only if getattr(self, name) != _default(name)]
            if changed:
                raise ValueError(f"{', '.join(changed)} apply to --data folders; the built-in datasets are 1x28x28")
        parse_image_size(self.image_size or FOLDER_DEFAULT_SIZE)
        parse_rgb(self.background)
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {self.test_fraction}")
        if self.iw_samples < 1:
            raise ValueError(f"iw_samples must be at least 1, got {self.iw_samples}")
        if self.iw_samples > 1 and (self.beta != 1.0 or self.kl_warmup_epochs):
            raise ValueError("--iw-samples above 1 trains the IWAE bound, which has no KL weight: keep --beta 1")
        if self.latent_channels is not None and self.latent_channels < 1:
            raise ValueError(f"latent_channels must be at least 1, got {self.latent_channels}")
        if self.likelihood != "gaussian" and self.gaussian_scale is not None:
            raise ValueError("--gaussian-scale applies to --likelihood gaussian")
        if self.likelihood == "gaussian" and self.gaussian_scale is None:
            self.gaussian_scale = "learned" if self.data else "fixed"

    @property
    def source_name(self) -> str:
        """The dataset name a model card reports: the built-in name or the folder's name."""
        return Path(self.data).resolve().name if self.data else self.dataset

    @property
    def image_hw(self) -> tuple[int, int]:
        return parse_image_size(self.image_size or FOLDER_DEFAULT_SIZE)

    @property
    def folder_channels(self) -> int:
        return self.image_channels or FOLDER_DEFAULT_CHANNELS

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        return parse_rgb(self.background)

    def architecture(self) -> Architecture:
        return Architecture(
            image_shape=(self.image_shape[0], self.image_shape[1], self.image_shape[2]),
            latent_dim=self.latent_dim,
            channels=self.channels,
            hidden=self.hidden,
            latent_channels=self.latent_channels,
        )

    def build_model(self) -> VAE:
        return VAE(self.architecture(), self.likelihood, self.gaussian_scale or "fixed")

    def to_dict(self) -> dict:
        """JSON-ready: what config.json and the model card hold."""
        return {**asdict(self), "image_shape": list(self.image_shape)}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["image_shape"] = tuple(data.get("image_shape", (1, 28, 28)))
        return cls(**data)

    def command_line(self) -> list[str]:
        """The `train` options that reproduce this config (those that differ from the defaults)."""
        flags = []
        for f in fields(self):
            value = getattr(self, f.name)
            if "help" in f.metadata and value != f.default:
                flags += [f"--{f.name.replace('_', '-')}", str(value)]
        return flags


def _default(name: str):
    return next(f.default for f in fields(TrainConfig) if f.name == name)


def _choices(annotation) -> tuple | None:
    """The allowed values of a Literal (or Optional Literal) annotation, else None."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    literals = [a for a in get_args(annotation) if get_origin(a) is Literal]
    return (*get_args(literals[0]), None) if literals else None


def check_choices(config) -> None:
    """Raise ValueError when a Literal-typed field holds a value outside its choices."""
    for name, annotation in get_type_hints(type(config)).items():
        allowed = _choices(annotation)
        if allowed is not None and getattr(config, name) not in allowed:
            shown = ", ".join(str(a) for a in allowed if a is not None)
            raise ValueError(f"{name} must be one of {shown}, got {getattr(config, name)!r}")


def parse_image_size(text: str) -> tuple[int, int]:
    """ "32" -> (32, 32); "24x32" -> (24, 32): height then width."""
    match = re.fullmatch(r"(\d+)(?:x(\d+))?", text)
    if not match:
        raise ValueError(f"image_size must be H or HxW, e.g. 32 or 24x32, got {text!r}")
    h, w = int(match[1]), int(match[2] or match[1])
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise ValueError(f"image_size sides must be {MIN_SIDE}..{MAX_SIDE} pixels, got {h}x{w}")
    return h, w


def parse_rgb(text: str) -> tuple[int, int, int]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise ValueError(f"background must be R,G,B with values 0..255, got {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])
