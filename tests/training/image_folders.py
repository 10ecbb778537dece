"""Image folders made on the spot for the tests: coloured rectangles in PNG, JPEG and WebP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (40, 60, 220)}


def draw(rng: np.random.Generator, colour: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    """A coloured rectangle on a transparent canvas of size (width, height)."""
    width, height = size
    pixels = np.zeros((height, width, 4), np.uint8)
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    pixels[top : top + height // 2, left : left + width // 2] = (*colour, 255)
    return Image.fromarray(pixels, "RGBA")


def make_image_folder(
    root: Path, classes: tuple[str, ...] | None = ("red", "blue"), per_class: int = 12, seed: int = 0
) -> Path:
    """PNG (with alpha), JPEG and WebP files of mixed sizes, in class sub-folders unless classes is None."""
    rng = np.random.default_rng(seed)
    for label in classes or ("red",):
        folder = root / label if classes else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = draw(rng, COLOURS[label], (int(rng.integers(20, 48)), int(rng.integers(20, 48))))
            suffix = (".png", ".jpg", ".webp")[i % 3]
            image = image.convert("RGB") if suffix == ".jpg" else image
            image.save(folder / f"{label}-{i}{suffix}")
    return root
