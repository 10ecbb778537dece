"""The second stage: uploaded image bytes -> model input arrays, made the way the training data
was made (the model card's `preprocessing` rule). Problems raise service.errors classes.

The rules are documented in docs/preprocessing.md; keep the two in step.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.errors import InvalidImage, PayloadTooLarge, ServiceError, UnsupportedMediaType

ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
# Images larger than this are box-reduced before any float work: the model sees 28x28 anyway.
WORKING_SIZE = 1024
# A pixel belongs to the figure when brighter than this fraction of the brightest pixel.
FIGURE_THRESHOLD = 0.2


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise InvalidImage("empty image body; send PNG, JPEG, BMP, GIF or WebP bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLarge(f"image has too many pixels; at most {max_pixels}") from None
    except UnidentifiedImageError:
        raise InvalidImage("not a decodable image; send PNG, JPEG, BMP, GIF or WebP bytes") from None
    except Exception as exc:  # any parser error is the client's bytes, never a 500
        raise InvalidImage(f"image header is corrupt ({exc})") from None
    if image.format not in ALLOWED_FORMATS:
        raise UnsupportedMediaType(f"image format {image.format} is not supported; send PNG, JPEG, BMP, GIF or WebP")
    width, height = image.size
    # Checked on the header, before any pixel is decoded: a decompression bomb never expands.
    if width * height > max_pixels:
        raise PayloadTooLarge(f"image is {width}x{height} = {width * height} pixels; at most {max_pixels}")
    return image


def _load(image: Image.Image, mode: str) -> Image.Image:
    if image.format == "JPEG" and max(image.size) > 2 * WORKING_SIZE:
        image.draft(mode, (WORKING_SIZE, WORKING_SIZE))  # decode at 1/2..1/8 scale: faster, less memory
    image.load()
    if max(image.size) > WORKING_SIZE:
        image = image.reduce(math.ceil(max(image.size) / WORKING_SIZE))
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _rgb(image: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    """Decoded pixels as float32 [H, W, 3] in [0, 1]; transparency composited on `background`."""
    image = _load(image, "RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        gray = _grayscale(image)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if not _has_alpha(image):
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        width, height = rgb.size
        return np.frombuffer(rgb.tobytes(), np.uint8).reshape(height, width, 3) / np.float32(255.0)
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / np.float32(255.0)
    alpha = rgba[:, :, 3:]
    backdrop = np.asarray(background, dtype=np.float32) / np.float32(255.0)
    return rgba[:, :, :3] * alpha + backdrop * (np.float32(1.0) - alpha)


def _grayscale(image: Image.Image, background: float | None = None) -> np.ndarray:
    """Decoded pixels as float32 [H, W] in [0, 1]; transparency flattened onto `background` (0-1),
    or, when None, onto a colour that contrasts with the ink."""
    image = _load(image, "L")
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.asarray(image, dtype=np.float32)
        return np.clip(values / (65535.0 if values.max() > 255 else 255.0), 0.0, 1.0)
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        return np.clip(values if values.max() <= 1.0 else values / 255.0, 0.0, 1.0)
    if not _has_alpha(image):
        plain = image if mode == "L" else image.convert("L")  # an 8-bit grayscale image needs no copy
        width, height = plain.size
        return np.frombuffer(plain.tobytes(), np.uint8).reshape(height, width) / np.float32(255.0)
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / np.float32(255.0)
    gray = np.asarray(rgba.convert("L"), dtype=np.float32) / np.float32(255.0)
    if alpha.min() >= 1.0:
        return gray
    if background is None:
        weight = alpha.sum()
        ink = float((gray * alpha).sum() / weight) if weight > 0 else 0.0
        background = 1.0 if ink < 0.5 else 0.0  # dark ink on white, light ink on black
    return gray * alpha + np.float32(background) * (1.0 - alpha)


def luminance(rgb: tuple[int, int, int]) -> float:
    """ITU-R 601-2 luma of an 8-bit colour, in [0, 1] (what Pillow's convert("L") computes)."""
    red, green, blue = rgb
    return (red * 299 + green * 587 + blue * 114) / 1000 / 255


def decode_image(
    data: bytes, max_pixels: int, channels: int = 1, background: tuple[int, int, int] | None = None
) -> np.ndarray:
    """Bytes of one PNG/JPEG/BMP/GIF (first frame)/WebP -> float32 in [0, 1]: [H, W] for one channel,
    [H, W, 3] for three. Transparent pixels go on `background` (RGB 0-255; grayscale default: a
    colour that contrasts with the ink; RGB default: white)."""
    image = _open(data, max_pixels)
    try:
        if channels == 3:
            return _rgb(image, background or (255, 255, 255))
        return _grayscale(image, None if background is None else luminance(background))
    except ServiceError:
        raise
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"image has too many pixels; at most {max_pixels}") from None
    except Exception as exc:  # truncated or corrupt pixel data
        raise InvalidImage(f"image data is truncated or corrupt ({exc})") from None
    finally:
        image.close()


def _resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """[h, w] or [h, w, C] float32 -> [height, width(, C)], Lanczos, per channel in float."""
    if values.shape[:2] == (height, width):
        return values
    if values.ndim == 3:
        return np.stack([_resize(values[:, :, c], width, height) for c in range(values.shape[2])], axis=2)
    resized = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32)).resize(
        (width, height), Image.Resampling.LANCZOS
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def border_level(values: np.ndarray) -> float:
    """Median brightness of the outer frame (5% of the short side, at least one pixel)."""
    band = max(1, min(values.shape) // 20)
    frame = np.concatenate(
        [values[:band].ravel(), values[-band:].ravel(), values[:, :band].ravel(), values[:, -band:].ravel()]
    )
    # np.median's result, without its Python wrappers per image: partition, then the
    # middle value or the mean of the two middle ones (in the array's dtype, as np.median does).
    middle = len(frame) // 2
    if len(frame) % 2:
        return float(np.partition(frame, middle)[middle])
    low, high = np.partition(frame, (middle - 1, middle))[middle - 1 : middle + 1]
    return float((low + high) / 2)


def _figure_box(values: np.ndarray) -> tuple[slice, slice] | None:
    peak = float(values.max())
    if peak <= 0.0:
        return None
    rows = np.flatnonzero((values > FIGURE_THRESHOLD * peak).any(axis=1))
    cols = np.flatnonzero((values > FIGURE_THRESHOLD * peak).any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _paste(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> np.ndarray:
    """Place patch ([h, w] or [h, w, C]) with its top-left at (top, left), clipped to the canvas."""
    h, w = patch.shape[:2]
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(canvas.shape[0], top + h), min(canvas.shape[1], left + w)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    return canvas


def mnist_digit(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """MNIST: figure's bounding box fit into 20x20 (aspect kept), centred by centre of mass in 28x28."""
    canvas = np.zeros((height, width), dtype=np.float32)
    box = _figure_box(values)
    if box is None:
        return canvas
    crop = values[box]
    fit = round(20 * min(height, width) / 28)
    scale = fit / max(crop.shape)
    new_h, new_w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    digit = _resize(crop, new_w, new_h)
    peak = float(digit.max())
    if peak <= 0.0:
        return canvas
    digit = digit / np.float32(peak)  # downscaled thin strokes regain full intensity, like MNIST's
    total = float(digit.sum())
    cy = float((digit.sum(axis=1) * np.arange(new_h)).sum() / total)
    cx = float((digit.sum(axis=0) * np.arange(new_w)).sum() / total)
    # MNIST puts the centre of mass on pixel (14, 14) (measured on the test set: mean 14.0).
    return _paste(canvas, digit, round(height / 2 - cy), round(width / 2 - cx))


def fashion_product(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fashion-MNIST: trim to the bounding box, longest edge to 28 (aspect kept), centred in 28x28."""
    canvas = np.zeros((height, width), dtype=np.float32)
    box = _figure_box(values)
    if box is None:
        return canvas
    crop = values[box]
    scale = min(height, width) / max(crop.shape)
    new_h, new_w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    product = _resize(crop, new_w, new_h)
    return _paste(canvas, product, (height - new_h) // 2, (width - new_w) // 2)


def fit(values: np.ndarray, height: int, width: int, background: np.ndarray, resize: str) -> np.ndarray:
    """Any image: resized keeping its aspect ratio, then padded with `background` ("pad") or
    centre-cropped ("crop") to height x width. No inversion, no thresholds."""
    h, w = values.shape[:2]
    scale = min(height / h, width / w) if resize == "pad" else max(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = _resize(values, new_w, new_h)
    if resize == "crop":
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return np.ascontiguousarray(resized[top : top + height, left : left + width])
    canvas = np.empty((height, width, *values.shape[2:]), dtype=np.float32)
    canvas[...] = background
    return _paste(canvas, resized, (height - new_h) // 2, (width - new_w) // 2)


class InputSpec(NamedTuple):
    """What a model's input looks like and how an upload becomes one (from its card)."""

    rule: str  # "mnist-digit", "fashion-product" or "fit"
    image_shape: tuple[int, int, int]  # [C, H, W]
    background: tuple[int, int, int] = (255, 255, 255)  # fit: under transparency, and the padding
    resize: str = "pad"  # fit: "pad" or "crop"


RULES = {"mnist-digit": mnist_digit, "fashion-product": fashion_product}


def to_model_input(values: np.ndarray, rule: str, height: int, width: int, normalize: bool = True) -> np.ndarray:
    """Grayscale [h, w] in [0, 1] -> float32 [height, width] as the training data was made
    (the grayscale dataset rules; `fit` is in prepare_image)."""
    if not normalize:
        return _resize(values, width, height)
    background = border_level(values)
    if values.shape == (height, width) and background <= 0.5:
        return values.astype(np.float32, copy=False)  # already in the model's format: unchanged
    if background > 0.5:  # ink on paper: invert to the training data's light-on-dark
        values = 1.0 - values
        background = 1.0 - background
    values = np.clip((values - np.float32(background)) / np.float32(max(1.0 - background, 1e-6)), 0.0, 1.0)
    return RULES[rule](values.astype(np.float32, copy=False), height, width)


def prepare_image(data: bytes, spec: InputSpec, max_pixels: int, normalize: bool = True) -> np.ndarray:
    """One upload -> float32 [C, H, W] in [0, 1]."""
    channels, height, width = spec.image_shape
    if spec.rule != "fit":
        return to_model_input(decode_image(data, max_pixels), spec.rule, height, width, normalize)[None]
    values = decode_image(data, max_pixels, channels, spec.background)
    if not normalize:
        values = _resize(values, width, height)
    else:
        colour = spec.background if channels == 3 else (luminance(spec.background) * 255,)
        backdrop = np.asarray(colour, dtype=np.float32) / np.float32(255.0)
        values = fit(values, height, width, backdrop, spec.resize)
    return values[None] if channels == 1 else np.ascontiguousarray(values.transpose(2, 0, 1))


def prepare_images(uploads: list[bytes], spec: InputSpec, max_pixels: int, normalize: bool = True) -> np.ndarray:
    """Upload bytes -> float32 [N, C, H, W]; raises a ServiceError naming the failing image."""
    batch = np.empty((len(uploads), *spec.image_shape), dtype=np.float32)
    for index, data in enumerate(uploads):
        try:
            batch[index] = prepare_image(data, spec, max_pixels, normalize)
        except ServiceError as exc:
            if len(uploads) > 1:
                exc.message = f"image {index}: {exc.message}"
            raise
    return batch
