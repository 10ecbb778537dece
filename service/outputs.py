"""The last stage: model outputs -> response bytes and responses. PNG (one image or a grid),
float32 .npy, JSON bodies (docs/api.md "Image outputs").

JSON is built with orjson from `ndarray.tolist()`; bulk pixels travel as PNG or .npy, never as
float lists. Every image response carries the model headers, built once per model.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import struct
import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import orjson
from starlette.responses import Response

from service.inference import Decoded, Encoded, to_uint8
from service.registry import LoadedModel

OutputFormat = Literal["png", "json", "npy", "gif", "webp"]
IMAGE_FORMATS: tuple[OutputFormat, ...] = ("png", "json", "npy")
LATENT_FORMATS: tuple[OutputFormat, ...] = ("json", "npy")
MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "json": "application/json",
    "npy": "application/x-npy",
    "gif": "image/gif",
    "webp": "image/webp",
}
ANIMATION_FORMATS: tuple[OutputFormat, ...] = ("png", "json", "npy", "gif", "webp")


def shows_images(fmt: str) -> bool:
    """Whether an answer in `fmt` holds 8-bit images (PNG, animations, JSON's base64 PNGs)."""
    return fmt != "npy"


FRAME_MS = 120  # an animation frame's duration
FORMAT_OF_MEDIA = {media: fmt for fmt, media in MEDIA_TYPES.items()}
MODEL_HEADER, LATENT_DIM_HEADER, LATENT_SHAPE_HEADER = "X-Model", "X-Latent-Dim", "X-Latent-Shape"
GRID_PADDING = 2
PNG_COMPRESS_LEVEL = 1  # speed over a few percent of size
# Below this many raw bytes (a few small images) deflate stores instead of compressing: the PNG
# stays small and compressing would be the most expensive step of a tiny /decode request.
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
    for _position, item in enumerate(accept.split(",")):
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


def zlib_stored(data: bytes) -> bytes:
    """`data` as a zlib stream (RFC 1950) of stored, uncompressed deflate blocks (RFC 1951 BTYPE 00):
    what zlib.compress(data, 0) returns, built directly: zlib.compress sets up a large compressor
    state per call even at level 0, which costs more than the rest of a one-image PNG."""
    parts: list[bytes | memoryview] = [
        b"\x78\x01"
    ]  # deflate, 32 KiB window, no preset dictionary, "fastest"; header check bits
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
def _png_head(height: int, width: int, channels: int) -> bytes:
    """Signature and IHDR chunk: 8-bit grayscale (colour type 0) or RGB (2), no interlace."""
    colour_type = 0 if channels == 1 else 2
    return PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))


PNG_IEND = _png_chunk(b"IEND", b"")


@functools.lru_cache(maxsize=64)
def _stored_png_parts(height: int, width: int, channels: int) -> tuple[bytes, int]:
    """For an image stored uncompressed (one deflate block): every byte before its scanlines (head,
    IDAT length and tag, zlib and block headers) and the IDAT CRC of those headers, which depend
    on the shape alone."""
    size = height * (width * channels + 1)
    headers = zlib_stored(bytes(size))[:7]  # zlib header, then the one stored block's header
    prefix = _png_head(height, width, channels) + struct.pack(">I", size + 11) + b"IDAT" + headers
    return prefix, zlib.crc32(b"IDAT" + headers)


def png_bytes(pixels: np.ndarray) -> bytes:
    """One 8-bit [H, W] grayscale or [H, W, 3] RGB array -> PNG bytes. Written directly: far less
    per-image overhead than Pillow, which matters for many small images per second."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    # Each scanline is prefixed by its filter type, 0 (None).
    rows = np.zeros((height, width * channels + 1), dtype=np.uint8)
    rows[:, 1:] = pixels.reshape(height, width * channels)
    scanlines = rows.tobytes()
    if len(scanlines) < PNG_STORE_BELOW:
        # What zlib_stored and _png_chunk would write, with the shape's constant parts made once.
        prefix, crc = _stored_png_parts(height, width, channels)
        adler = struct.pack(">I", zlib.adler32(scanlines))
        crc = zlib.crc32(adler, zlib.crc32(scanlines, crc))
        return b"".join((prefix, scanlines, adler, struct.pack(">I", crc), PNG_IEND))
    idat = zlib.compress(scanlines, PNG_COMPRESS_LEVEL)
    return b"".join((_png_head(height, width, channels), _png_chunk(b"IDAT", idat), PNG_IEND))


def grid(pixels: np.ndarray, cols: int | None = None) -> np.ndarray:
    """[N, H, W] or [N, H, W, C] uint8 -> one image: `cols` columns (default ceil(sqrt(N))),
    2-pixel black padding between cells."""
    n, height, width = pixels.shape[:3]
    if n == 1:
        return pixels[0]
    channel_axes = pixels.shape[3:]
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pad = GRID_PADDING
    cells = np.zeros((rows * cols, height + pad, width + pad, *channel_axes), dtype=np.uint8)
    cells[:n, :height, :width] = pixels
    # [rows, cols, H+pad, W+pad, (C)] -> [rows, H+pad, cols, W+pad, (C)]; then drop the trailing padding.
    canvas = cells.reshape(rows, cols, height + pad, width + pad, *channel_axes).swapaxes(1, 2)
    canvas = canvas.reshape(rows * (height + pad), cols * (width + pad), *channel_axes)
    return np.ascontiguousarray(canvas[: rows * (height + pad) - pad, : cols * (width + pad) - pad])


def png_grid_bytes(pixels: np.ndarray, cols: int | None = None) -> bytes:
    """[N, H, W(, C)] uint8 -> one PNG (the grid, or the image itself when N = 1)."""
    return png_bytes(grid(pixels, cols))


def animation_bytes(pixels: np.ndarray, fmt: str) -> bytes:
    """[N, H, W(, C)] uint8 frames -> an animated GIF or WebP that plays forward and back, looping."""
    from PIL import Image  # only animations need Pillow here

    frames = [Image.fromarray(frame) for frame in pixels]
    frames += frames[-2:0:-1]
    buffer = io.BytesIO()
    options = {"lossless": True} if fmt == "webp" else {}
    frames[0].save(
        buffer, format=fmt.upper(), save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0, **options
    )
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """float32 .npy bytes, exactly what np.save writes; its header is built once per shape."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    return b"".join((_npy_header(array.shape), array.data))  # one copy, from the array itself


@functools.lru_cache(maxsize=1024)
def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def b64_pngs(pixels: np.ndarray) -> list[str]:
    """[N, H, W(, C)] uint8 -> N base64 PNG strings."""
    return [base64.b64encode(png_bytes(image)).decode("ascii") for image in pixels]


def json_bytes(payload: dict) -> bytes:
    """Compact UTF-8 JSON with orjson: the same floats as json.dumps (shortest round-trip repr),
    much faster; a non-finite float becomes null instead of an error."""
    return orjson.dumps(payload)


# --- responses -----------------------------------------------------------------------------


def model_headers(model: LoadedModel) -> dict[str, str]:
    return {
        MODEL_HEADER: model.name,
        LATENT_DIM_HEADER: str(model.latent_dim),
        LATENT_SHAPE_HEADER: ",".join(map(str, model.latent_shape)),
    }


def _raw_headers(model: LoadedModel, media_type: str) -> tuple[tuple[bytes, bytes], ...]:
    headers = model.response_headers.get(media_type)
    if headers is None:
        pairs = (("content-type", media_type), *model_headers(model).items())
        headers = tuple((key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in pairs)
        model.response_headers[media_type] = headers
    return headers


class ModelResponse(Response):
    """200 with the model headers, encoded once per (model, media type) instead of per response:
    Starlette's Response re-encodes every header each time."""

    def __init__(
        self, content: bytes, model: LoadedModel, media_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.status_code = 200
        self.background = None
        self.body = content
        self.raw_headers = [(b"content-length", b"%d" % len(content)), *_raw_headers(model, media_type)]
        for key, value in (extra or {}).items():
            self.raw_headers.append((key.lower().encode("latin-1"), value.encode("latin-1")))


def images_response(
    model: LoadedModel, fmt: str, decoded: Decoded, latents: np.ndarray, cols: int | None = None
) -> Response:
    """/sample and /decode: a PNG grid, float32 .npy [N, C, H, W], or JSON with the latents."""
    if fmt == "png":
        content = png_grid_bytes(decoded.pixels, cols)
    elif fmt == "npy":
        content = npy_bytes(decoded.images)
    else:
        content = json_bytes(
            {
                "model": model.name,
                "latent_dim": model.latent_dim,
                "latent_shape": list(model.latent_shape),
                "latents": latents.tolist(),
                "images": b64_pngs(decoded.pixels),
            }
        )
    return ModelResponse(content, model, MEDIA_TYPES[fmt])


def encoded_response(
    model: LoadedModel, fmt: str, filenames: Sequence[str | None], encoded: Encoded, z: np.ndarray | None
) -> Response:
    """/encode: JSON results per image, or float32 .npy [N, K, *latent_shape] (K: mu, logvar, z)."""
    if fmt == "npy":
        fields = [encoded.mu, encoded.logvar] + ([z] if z is not None else [])
        names = "mu,logvar,z" if z is not None else "mu,logvar"
        return ModelResponse(npy_bytes(np.stack(fields, axis=1)), model, MEDIA_TYPES["npy"], {"X-Latent-Fields": names})
    mus, logvars = encoded.mu.tolist(), encoded.logvar.tolist()
    zs = z.tolist() if z is not None else None
    results = []
    for index, filename in enumerate(filenames):
        result = {"filename": filename, "mu": mus[index], "logvar": logvars[index]}
        if zs is not None:
            result["z"] = zs[index]
        results.append(result)
    body = {
        "model": model.name,
        "latent_dim": model.latent_dim,
        "latent_shape": list(model.latent_shape),
        "results": results,
    }
    return ModelResponse(json_bytes(body), model, MEDIA_TYPES["json"])


def reconstructed_json(
    model: LoadedModel,
    filenames: Sequence[str | None],
    inputs: np.ndarray,
    latents: np.ndarray,
    decoded: Decoded,
    mse: list[float],
) -> Response:
    """/reconstruct's JSON: per image the model input, the reconstruction, its error and the
    latent decoded (the PNG and .npy answers are images_response's)."""
    input_pngs = b64_pngs(to_uint8(inputs))
    output_pngs = b64_pngs(decoded.pixels)
    latent_rows = latents.tolist()
    results = [
        {
            "filename": filename,
            "input": input_pngs[index],
            "image": output_pngs[index],
            "mse": mse[index],
            "latent": latent_rows[index],
        }
        for index, filename in enumerate(filenames)
    ]
    body = {
        "model": model.name,
        "latent_dim": model.latent_dim,
        "latent_shape": list(model.latent_shape),
        "results": results,
    }
    return ModelResponse(json_bytes(body), model, MEDIA_TYPES["json"])


def walk_response(model: LoadedModel, fmt: str, decoded: Decoded, latents: np.ndarray, extra: dict) -> Response:
    """/interpolate: the frames as one PNG row, an animation, .npy [steps, C, H, W], or JSON."""
    if fmt in ("gif", "webp"):
        return ModelResponse(animation_bytes(decoded.pixels, fmt), model, MEDIA_TYPES[fmt])
    if fmt == "json":
        body = {
            "model": model.name,
            "latent_shape": list(model.latent_shape),
            **extra,
            "latents": latents.tolist(),
            "images": b64_pngs(decoded.pixels),
        }
        return ModelResponse(json_bytes(body), model, MEDIA_TYPES["json"])
    return images_response(model, fmt, decoded, latents, cols=len(latents))


def traversal_response(
    model: LoadedModel, fmt: str, decoded: Decoded, latents: np.ndarray, dims: list[int], values: np.ndarray
) -> Response:
    """/traverse: one PNG grid row per dimension, .npy [dims, steps, C, H, W], or JSON."""
    steps = len(values)
    swept = {"X-Traverse-Dims": ",".join(map(str, dims)), "X-Traverse-Span": f"{float(values[-1]):g}"}
    if fmt == "png":
        return ModelResponse(png_grid_bytes(decoded.pixels, cols=steps), model, MEDIA_TYPES["png"], swept)
    if fmt == "npy":
        grid_images = decoded.images.reshape(len(dims), steps, *decoded.images.shape[1:])
        return ModelResponse(npy_bytes(grid_images), model, MEDIA_TYPES["npy"], swept)
    pngs = b64_pngs(decoded.pixels)
    body = {
        "model": model.name,
        "latent_shape": list(model.latent_shape),
        "dims": dims,
        "values": values.tolist(),
        "latents": latents.reshape(len(dims), steps, *model.latent_shape).tolist(),
        "images": [pngs[row * steps : (row + 1) * steps] for row in range(len(dims))],
    }
    return ModelResponse(json_bytes(body), model, MEDIA_TYPES["json"])
