"""Image bytes in and out: uploads for /encode and /reconstruct, PNG grids, `.npy` payloads.

Pillow is optional. Without it, arrays are written as PNG by a tiny zlib-based encoder
(8-bit grayscale, RGB or RGBA: what the service's models consume and produce).

Arrays of pixels come in two layouts: the model layout [N, C, H, W] (C = 1 or 3, what results
hold) and the image layout, [H, W] grayscale or [H, W, C] channels last, which PNG encoding takes.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

try:  # Pillow is an extra: `pip install vae-client[pillow]`
    from PIL import Image as PILImage
except ImportError:  # pragma: no cover - exercised in the clean-venv install test
    PILImage = None  # type: ignore[assignment]

#: Anything `encode()` / `reconstruct()` accepts as one image.
ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart upload."""

    filename: str
    content: bytes
    content_type: str
    source_name: str | None  # the user's file name, None for in-memory images


def require_pillow(feature: str) -> Any:
    """The PIL.Image module, or an ImportError that says how to get it."""
    if PILImage is None:
        raise ImportError(f"{feature} needs Pillow: pip install 'vae-client[pillow]'")
    return PILImage


def sniff_content_type(data: bytes) -> str:
    """The MIME type from an image's magic bytes; octet-stream lets the server sniff instead."""
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels from uint8, bool, or float arrays in [0, 1] (clipped, rounded)."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.bool_:
        return pixels.astype(np.uint8) * 255
    if np.issubdtype(pixels.dtype, np.integer):
        if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
            raise ValueError("integer image arrays must hold values in 0..255")
        return pixels.astype(np.uint8)
    if np.issubdtype(pixels.dtype, np.floating):
        if not np.isfinite(pixels).all():
            raise ValueError("float image arrays must be finite (values in [0, 1])")
        return np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise TypeError(f"unsupported image array dtype {pixels.dtype}; use uint8 or float in [0, 1]")


#: PNG colour type by channels last: grayscale, RGB, RGBA.
_PNG_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of one image: [H, W] grayscale or [H, W, C] with C = 1, 3 (RGB) or 4 (RGBA);
    uint8, or float in [0, 1]."""
    pixels = to_uint8(np.asarray(pixels))
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim != 2 and not (pixels.ndim == 3 and pixels.shape[2] in _PNG_COLOUR_TYPES):
        raise ValueError(f"encode_png takes one [H, W] grayscale or [H, W, 3|4] colour image, got shape {pixels.shape}")
    if PILImage is not None:
        buffer = io.BytesIO()
        PILImage.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
        return buffer.getvalue()
    return _encode_png_zlib(pixels)


def _encode_png_zlib(pixels: np.ndarray) -> bytes:
    """Minimal PNG writer (8-bit grayscale, RGB or RGBA; filter 0 on every row) for installs without Pillow."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    scanlines = np.ascontiguousarray(pixels).reshape(height, width * channels)
    rows = np.hstack([np.zeros((height, 1), np.uint8), scanlines])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOUR_TYPES[channels], 0, 0, 0)  # 8 bits a channel
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def split_images(images: Any) -> list[Any]:
    """One list entry per image; a lone path, bytes, PIL image or single array becomes [it].

    Arrays become one [H, W] or [H, W, C] array per image (see `array_images`).
    """
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)):
        return [images]
    if PILImage is not None and isinstance(images, PILImage.Image):
        return [images]
    if isinstance(images, np.ndarray):
        return array_images(images)
    if isinstance(images, Iterable):
        return [image for item in images for image in split_images(item)]
    raise TypeError(f"cannot upload {type(images).__name__}: expected a path, bytes, PIL image or array")


def array_images(images: np.ndarray) -> list[np.ndarray]:
    """The images in an array, each [H, W] or [H, W, C] (the layout PNG encoding takes).

    [H, W] is one grayscale image and [H, W, 3|4] one colour image (channels last, as
    `np.asarray(pil_image)` gives); [N, H, W] is N grayscale images; [N, C, H, W] with C = 1 or 3
    is N images in the model layout (what results hold), and [N, H, W, 3|4] N colour images.
    """
    if images.ndim == 2:
        return [images]
    if images.ndim == 3:
        return [images] if images.shape[2] in (3, 4) else list(images)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return [image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0) for image in images]
    if images.ndim == 4 and images.shape[3] in (3, 4):
        return list(images)
    raise ValueError(
        f"image arrays must be [H, W], [H, W, 3], [N, H, W], [N, C, H, W] (C = 1 or 3) or [N, H, W, 3], "
        f"got shape {images.shape}"
    )


def to_upload(image: Any, index: int) -> Upload:
    """The multipart part for one image: files are sent as they are, everything else as PNG."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        content = path.read_bytes()
        return Upload(path.name, content, sniff_content_type(content), path.name)
    if isinstance(image, (bytes, bytearray, memoryview)):
        content = bytes(image)
        return Upload(f"image-{index}", content, sniff_content_type(content), None)
    if isinstance(image, np.ndarray):
        return Upload(f"image-{index}.png", encode_png(image), "image/png", None)
    if PILImage is not None and isinstance(image, PILImage.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return Upload(f"image-{index}.png", buffer.getvalue(), "image/png", None)
    raise TypeError(f"cannot upload {type(image).__name__}: expected a path, bytes, PIL image or array")


def to_uploads(images: Any) -> list[Upload]:
    """Every image in `images` as an upload; an empty selection is a caller error."""
    uploads = [to_upload(image, index) for index, image in enumerate(split_images(images))]
    if not uploads:
        raise ValueError("no images given: pass at least one path, bytes, PIL image or array")
    return uploads


def channels_last(images: np.ndarray) -> np.ndarray:
    """Model-layout images [N, C, H, W] -> [N, H, W] for C = 1, [N, H, W, C] otherwise; [N, H, W]
    and [H, W] (grayscale) are returned with a batch axis, as [N, H, W]."""
    if images.ndim == 4:
        return images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    if images.ndim == 3:
        return images
    if images.ndim == 2:
        return images[None]
    raise ValueError(f"images must be [N, C, H, W], [N, H, W] or [H, W], got shape {images.shape}")


def grid(images: np.ndarray, padding: int = 2, cols: int | None = None) -> np.ndarray:
    """uint8 grid laid out as the service's PNG: `cols` (default ceil(sqrt(n))) columns, black padding.

    `images` [N, C, H, W] (or grayscale [N, H, W], [H, W]) gives [H', W'] for C = 1 and
    [H', W', C] for colour; a single image is returned as itself.
    """
    pixels = channels_last(to_uint8(np.asarray(images)))
    count, height, width = pixels.shape[:3]
    if count == 1:
        return pixels[0]
    columns = cols or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    shape = (rows * height + (rows - 1) * padding, columns * width + (columns - 1) * padding, *pixels.shape[3:])
    canvas = np.zeros(shape, np.uint8)
    for index, cell in enumerate(pixels):
        top = (index // columns) * (height + padding)
        left = (index % columns) * (width + padding)
        canvas[top : top + height, left : left + width] = cell
    return canvas


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as `.npy` file bytes (never pickled)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    """The array in `.npy` file bytes; refuses pickled object arrays."""
    return np.load(io.BytesIO(data), allow_pickle=False)
