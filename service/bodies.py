"""HTTP request bodies -> bytes and arrays, with size limits enforced while reading.

Uploads: multipart/form-data (any field names) or one raw image body. Latents: JSON or .npy.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import orjson
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from service.errors import ApiError

IMAGE_TYPES = "multipart/form-data, image/png, image/jpeg, image/bmp, image/gif, image/webp, application/octet-stream"
LATENT_TYPES = "application/json, application/x-npy"
# Declared raw-body types we decode (the bytes are sniffed, so image/jpg for a PNG still works).
RAW_IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/bmp", "image/x-bmp", "image/x-ms-bmp",
     "image/gif", "image/webp", "application/octet-stream"}
)
FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMBER_TYPES = frozenset({float, int})


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int, setting: str) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body is {declared} bytes; at most {limit} ({setting})")
    # ASGI receive() straight, not Request.stream(): one async generator less per request, and a
    # small body arrives in one message, returned as is.
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise ApiError(413, "payload_too_large", f"body exceeds {limit} bytes ({setting})")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


async def read_uploads(request: Request, max_bytes: int, max_images: int) -> list[tuple[str | None, bytes]]:
    """(filename, bytes) for every uploaded image, in order."""
    media_type = _media_type(request)
    if media_type != "multipart/form-data" and media_type not in RAW_IMAGE_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {media_type or '(none)'} is not accepted; send {IMAGE_TYPES}",
        )
    body = await read_body(request, max_bytes, "VAE_MAX_UPLOAD_BYTES")
    if media_type != "multipart/form-data":
        if not body:
            raise ApiError(422, "invalid_image", "empty body; send one image, or multipart/form-data with image files")
        return [(None, body)]

    async def stream():
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=max_images, max_fields=1000)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "Too many files" in exc.message:
            raise ApiError(
                413, "payload_too_large", f"too many images; at most {max_images} per request (VAE_MAX_UPLOAD_IMAGES)"
            ) from None
        raise ApiError(422, "invalid_request", f"malformed multipart body ({exc.message})") from None
    uploads: list[tuple[str | None, bytes]] = []
    try:
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads.append((value.filename, await value.read()))
    finally:
        await form.close()
    if not uploads:
        raise ApiError(422, "invalid_request", "no image file in the multipart body; send one or more file parts")
    return uploads


def well_formed_latents(raw: object, latent_dim: int, max_rows: int) -> np.ndarray | None:
    """JSON latents that are already right ([D] or [N, D] finite numbers within float32) -> float32
    [N, D] with one numpy call; None for anything else, which latents_array then explains.

    Plain-Python checks on a few dozen numbers cost the event loop less than the several numpy
    calls of the general path, and a one-row /decode is the service's most frequent request."""
    if type(raw) is not list or not raw:
        return None
    rows = raw if type(raw[0]) is list else [raw]
    if len(rows) > max_rows:
        return None
    for row in rows:
        if type(row) is not list or len(row) != latent_dim:
            return None
        if not NUMBER_TYPES.issuperset(map(type, row)):  # exact types: bool (an int subclass) is refused
            return None
        # NaN fails every comparison, and a sum with NaN or inf in it is not finite.
        if not (-FLOAT32_MAX <= min(row) and max(row) <= FLOAT32_MAX and math.isfinite(sum(row))):
            return None
    return np.array(rows, dtype=np.float32)


def latents_array(raw: object, latent_dim: int, max_rows: int) -> np.ndarray:
    """A nested list or array -> float32 [N, D], validated (422 says what is allowed)."""
    array = raw if isinstance(raw, np.ndarray) else np.array(raw)
    if array.dtype.kind not in "iuf":
        raise ApiError(422, "invalid_request", f"latents must be numbers, as [N, {latent_dim}] floats")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != latent_dim:
        shape = list(array.shape) if array.ndim != 1 else [array.shape[0]]
        raise ApiError(
            422,
            "invalid_request",
            f"latents have shape {shape}; expected [N, {latent_dim}] (latent size {latent_dim})",
            {"expected_latent_dim": latent_dim},
        )
    if not 1 <= len(array) <= max_rows:
        raise ApiError(
            422, "invalid_request", f"{len(array)} latent rows; allowed 1..{max_rows} (VAE_MAX_SAMPLE_N)",
            {"max_rows": max_rows},
        )
    # One reduction rejects NaN (max propagates it), inf, and values that would overflow float32
    # (the ufunc's reduce directly: ndarray.max() goes through a Python wrapper).
    if not np.maximum.reduce(np.abs(array), axis=None) <= FLOAT32_MAX:
        raise ApiError(
            422, "invalid_request", f"latents contain NaN or inf (or values beyond float32); expected finite [N, {latent_dim}] floats",
            {"expected_latent_dim": latent_dim},
        )
    return np.ascontiguousarray(array, dtype=np.float32)


async def read_latents(request: Request, latent_dim: int, max_bytes: int, max_rows: int) -> np.ndarray:
    media_type = _media_type(request)
    if media_type not in ("application/json", "application/x-npy", "application/octet-stream"):
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type {media_type or '(none)'} is not accepted; send {LATENT_TYPES}"
        )
    body = await read_body(request, max_bytes, "VAE_MAX_JSON_BYTES")
    if media_type == "application/json":
        try:
            payload = orjson.loads(body)  # ~7x faster than json.loads on a small body
        except orjson.JSONDecodeError:
            # orjson refuses what the standard library reads (NaN, Infinity, 1e400, UTF-16); read it
            # that way so those get latents_array's precise message, and only then call it invalid.
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                raise ApiError(422, "invalid_request", 'body is not valid JSON; send {"latents": [[float, ...], ...]}') from None
        if not isinstance(payload, dict) or "latents" not in payload:
            raise ApiError(422, "invalid_request", 'JSON body must be an object {"latents": [[float, ...], ...]}')
        fast = well_formed_latents(payload["latents"], latent_dim, max_rows)
        if fast is not None:
            return fast
        try:
            return latents_array(payload["latents"], latent_dim, max_rows)
        except ApiError:
            raise
        except (ValueError, TypeError):  # ragged lists
            raise ApiError(
                422, "invalid_request", f"latents must be a rectangular [N, {latent_dim}] list of numbers",
                {"expected_latent_dim": latent_dim},
            ) from None
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception:  # numpy raises several types for a bad header or truncated data
        raise ApiError(422, "invalid_request", f"body is not a valid .npy array; send float32 [N, {latent_dim}]") from None
    if not isinstance(array, np.ndarray):
        raise ApiError(422, "invalid_request", f"body must be a single .npy array [N, {latent_dim}], not an archive")
    return latents_array(array, latent_dim, max_rows)
