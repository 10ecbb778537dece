"""Model output arrays -> response bytes: PNG (single image or grid), float32 .npy, JSON.

Formats are in docs/api.md ("Image outputs"). JSON is built with orjson from `ndarray.tolist()`;
bulk pixels travel as PNG or .npy, never as float lists.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import struct
import zlib
from typing import Literal

import numpy as np
import orjson

OutputFormat = Literal["png", "json", "npy"]
MEDIA_TYPES: dict[str, str] = {"png": "image/png", "json": "application/json", "npy": "application/x-npy"}
FORMAT_OF_MEDIA = {media: fmt for fmt, media in MEDIA_TYPES.items()}
GRID_PADDING = 2
PNG_COMPRESS_LEVEL = 1  # speed over a few percent of size
# Below this many raw bytes (a few 28x28 images) deflate stores instead of compressing: the PNG
# stays about 1 KB and compressing would be the most expensive step of a tiny /decode request.
PNG_STORE_BELOW = 4096
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STORED_BLOCK_MAX = 65535  # bytes in one stored deflate block


def negotiate(fmt: str | None, accept: str | None, allowed: tuple[str, ...], default: str) -> str:
    """`format` query wins; else the Accept type with the highest q among `allowed`; else default."""
    if fmt:
        return fmt
    if not accept:
        return default
    best, best_q = default, 0.0
    for position, item in enumerate(accept.split(",")):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        candidate = FORMAT_OF_MEDIA.get(media)
        if candidate in allowed and q > best_q:
            best, best_q = candidate, q
    return best


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[N, 1, H, W] floats in [0, 1] -> [N, H, W] uint8 (rounded, clipped)."""
    return np.clip(np.rint(images.reshape(len(images), *images.shape[-2:]) * 255.0), 0, 255).astype(np.uint8)


def zlib_stored(data: bytes) -> bytes:
    """`data` as a zlib stream (RFC 1950) of stored, uncompressed deflate blocks (RFC 1951 BTYPE 00):
    what zlib.compress(data, 0) returns, built directly. zlib.compress sets up a ~256 KiB compressor
    state per call even at level 0; in the serving process that allocation cost ~60 us, more than the
    rest of a one-image PNG (bench/README.md "What the profiles showed")."""
    parts = [b"\x78\x01"]  # deflate, 32 KiB window, no preset dictionary, "fastest"; header check bits
    view = memoryview(data)
    for start in range(0, max(len(data), 1), STORED_BLOCK_MAX):
        block = view[start : start + STORED_BLOCK_MAX]
        final = start + STORED_BLOCK_MAX >= len(data)
        parts.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    parts.append(struct.pack(">I", zlib.adler32(data)))
    return b"".join(parts)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@functools.lru_cache(maxsize=64)
def _png_head(height: int, width: int) -> bytes:
    """Signature and IHDR chunk: 8-bit grayscale, no interlace."""
    return PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))


PNG_IEND = _png_chunk(b"IEND", b"")


def png_bytes(pixels: np.ndarray) -> bytes:
    """One 8-bit grayscale [H, W] array -> PNG bytes. Written directly: ~10x less per-image
    overhead than Pillow, which matters for many small images per second."""
    height, width = pixels.shape
    # Each scanline is prefixed by its filter type, 0 (None).
    rows = np.zeros((height, width + 1), dtype=np.uint8)
    rows[:, 1:] = pixels
    scanlines = rows.tobytes()
    if len(scanlines) < PNG_STORE_BELOW:
        idat = zlib_stored(scanlines)
    else:
        idat = zlib.compress(scanlines, PNG_COMPRESS_LEVEL)
    return b"".join((_png_head(height, width), _png_chunk(b"IDAT", idat), PNG_IEND))


def grid(pixels: np.ndarray) -> np.ndarray:
    """[N, H, W] uint8 -> one image: ceil(sqrt(N)) columns, 2-pixel black padding between cells."""
    n, height, width = pixels.shape
    if n == 1:
        return pixels[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = GRID_PADDING
    cells = np.zeros((rows * cols, height + pad, width + pad), dtype=np.uint8)
    cells[:n, :height, :width] = pixels
    # [rows, cols, H+pad, W+pad] -> [rows, H+pad, cols, W+pad]; then drop the trailing padding.
    canvas = cells.reshape(rows, cols, height + pad, width + pad).transpose(0, 2, 1, 3)
    canvas = canvas.reshape(rows * (height + pad), cols * (width + pad))
    return np.ascontiguousarray(canvas[: rows * (height + pad) - pad, : cols * (width + pad) - pad])


def png_grid_bytes(pixels: np.ndarray) -> bytes:
    """[N, H, W] uint8 -> one PNG (the grid, or the image itself when N = 1)."""
    return png_bytes(grid(pixels))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def b64_pngs(pixels: np.ndarray) -> list[str]:
    """[N, H, W] uint8 -> N base64 PNG strings."""
    return [base64.b64encode(png_bytes(image)).decode("ascii") for image in pixels]


def json_bytes(payload: dict) -> bytes:
    """Compact UTF-8 JSON. orjson: ~3 us for an /encode answer where json.dumps took ~80 us, the
    same floats (shortest round-trip repr); a non-finite float becomes null instead of an error."""
    return orjson.dumps(payload)


def images_json(model: str, latent_dim: int, latents: np.ndarray, pixels: np.ndarray) -> bytes:
    return json_bytes(
        {"model": model, "latent_dim": latent_dim, "latents": latents.tolist(), "images": b64_pngs(pixels)}
    )
