"""Real digit image bytes for tests and benchmarks.

Digits come from data/mnist.npz (the MNIST test set) when present, else are drawn with Pillow,
so they work on a fresh clone.
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO_ROOT = Path(__file__).resolve().parent.parent
# TESTS_MNIST_NPZ=/nonexistent runs the suite on drawn digits, as on a clone without data/.
MNIST_NPZ = Path(os.environ.get("TESTS_MNIST_NPZ", REPO_ROOT / "data" / "mnist.npz"))


@functools.lru_cache(maxsize=1)
def _mnist_test_images() -> np.ndarray | None:
    if not MNIST_NPZ.exists():
        return None
    try:
        with np.load(MNIST_NPZ) as archive:
            return archive["test_images"][:1000].copy()
    except Exception:
        return None


@functools.lru_cache(maxsize=64)
def _drawn_digit(index: int) -> np.ndarray:
    """A white-on-black digit drawn with Pillow's default font, MNIST-like: fit in 20x20, centred by mass."""
    canvas = Image.new("L", (64, 64), 0)
    font = ImageFont.load_default(size=56)
    ImageDraw.Draw(canvas).text(
        (32, 32), str(index % 10), fill=255, font=font, anchor="mm", stroke_width=3, stroke_fill=255
    )
    box = canvas.getbbox()
    glyph = canvas.crop(box)
    scale = 20 / max(glyph.size)
    glyph = glyph.resize(
        (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))), Image.Resampling.LANCZOS
    )
    pixels = np.asarray(glyph, dtype=np.float64)
    mass = pixels.sum()
    cy = (pixels.sum(axis=1) * np.arange(glyph.height)).sum() / mass
    cx = (pixels.sum(axis=0) * np.arange(glyph.width)).sum() / mass
    digit = Image.new("L", (28, 28), 0)
    digit.paste(glyph, (round(14 - cx), round(14 - cy)))  # centre of mass on (14, 14), as MNIST
    return np.asarray(digit, dtype=np.uint8)


def digit_array(index: int = 0) -> np.ndarray:
    """A 28x28 uint8 digit, white on black: MNIST test image `index` if available, else drawn."""
    images = _mnist_test_images()
    if images is not None:
        return images[index % len(images)]
    return _drawn_digit(index)


def image_bytes(pixels: np.ndarray, fmt: str = "PNG", **save_options) -> bytes:
    """Encode a uint8 array ([H, W] gray or [H, W, 3|4]) with Pillow in `fmt`."""
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    if fmt.upper() in ("JPEG", "JPG") and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def digit_png_bytes(index: int = 0, fmt: str = "PNG", size: int | None = None, white_background: bool = False) -> bytes:
    """Real digit image bytes: PNG (or JPEG, BMP, GIF, WEBP), optionally upscaled to size x size and
    drawn as ink on white paper."""
    pixels = digit_array(index)
    if white_background:
        pixels = 255 - pixels
    if size is not None and size != 28:
        pixels = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC))
    options = {"quality": 95} if fmt.upper() in ("JPEG", "WEBP") else {}
    return image_bytes(pixels, fmt, **options)


MEDIA_TYPE = {"PNG": "image/png", "JPEG": "image/jpeg", "BMP": "image/bmp", "GIF": "image/gif", "WEBP": "image/webp"}
