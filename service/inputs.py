"""The first stage: query parameters and request bodies in, checked against the limits.

Query parameters are one pydantic model per route (FastAPI validates them and writes the OpenAPI
entries). Bodies are read here by hand because they come in several types: uploads as
multipart/form-data (any field names) or one raw image body; latents as JSON or .npy. Sizes are
enforced while reading. Nothing here knows HTTP statuses: problems raise service.errors classes.
"""

from __future__ import annotations

import functools
import io
import json
import math
from collections.abc import Callable
from typing import Annotated, Literal, NamedTuple

import numpy as np
import orjson
import simdjson
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.errors import InvalidImage, InvalidRequest, PayloadTooLarge, UnsupportedMediaType

IMAGE_TYPES = "multipart/form-data, image/png, image/jpeg, image/bmp, image/gif, image/webp, application/octet-stream"
LATENT_TYPES = "application/json, application/x-npy"
# Declared raw-body types we decode (the bytes are sniffed, so image/jpg for a PNG still works).
RAW_IMAGE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/bmp",
        "image/x-bmp",
        "image/x-ms-bmp",
        "image/gif",
        "image/webp",
        "application/octet-stream",
    }
)
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_MAX_SQUARED = FLOAT32_MAX * FLOAT32_MAX  # finite in float64
DOT_CHECK_LIMIT = 4096  # numbers; OpenBLAS computes a dot this short on the calling thread


# --- query parameters ----------------------------------------------------------------------

ModelName = Annotated[str | None, Field(description="Model name (GET /models); default: the configured default model")]
Seed = Annotated[
    int | None, Field(ge=0, le=2**63 - 1, description="Seed for numpy default_rng; same seed, same output")
]
Normalize = Annotated[
    bool,
    Field(description="true: make the image like the training data (docs/preprocessing.md); false: convert + resize"),
]
ImageFormat = Annotated[
    Literal["png", "json", "npy"] | None, Field(description="Output format; default: from the Accept header, else png")
]


class QueryModel(BaseModel):
    """Base of the routes' query models; unknown names are refused for every route by
    service/deps.py, which also lists the allowed ones."""

    model_config = ConfigDict(frozen=True)


class SampleQuery(QueryModel):
    model: ModelName = None
    n: int = Field(16, ge=1, description="Number of images (1..VAE_MAX_SAMPLE_N)")
    seed: Seed = None
    temperature: float = Field(
        1.0, gt=0, le=10, description="Standard deviation T of the prior (a mixture's spread is scaled by T)"
    )
    prior: Literal["standard", "mixture"] | None = Field(
        None, description="N(0, I), or the mixture stored with the model; default: the card's prior.default"
    )
    label: str | None = Field(
        None, max_length=200, description="A class name or index from the card's labels: that class's prior"
    )
    format: ImageFormat = None


class ScoreQuery(QueryModel):
    model: ModelName = None
    k: int = Field(64, ge=1, description="Importance samples per image (1..VAE_MAX_SCORE_K)")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of the importance samples; same seed, same scores")
    normalize: Normalize = True


def check_score_k(k: int, images: int, max_k: int, max_rows: int) -> int:
    if k > max_k:
        raise InvalidRequest(
            f"query parameter 'k': {k} is too many; allowed 1..{max_k} (VAE_MAX_SCORE_K)", {"max": max_k}
        )
    if k * images > max_rows:
        raise InvalidRequest(
            f"k x images = {k} x {images} = {k * images} decoder rows; at most {max_rows} per request "
            "(VAE_MAX_SCORE_ROWS): lower k or send fewer images",
            {"max_rows": max_rows},
        )
    return k


class DecodeQuery(QueryModel):
    model: ModelName = None
    format: ImageFormat = None


class EncodeQuery(QueryModel):
    model: ModelName = None
    normalize: Normalize = True
    sample: bool = Field(False, description="true: also draw z = mu + sigma * eps with default_rng(seed)")
    seed: Seed = None
    format: Literal["json", "npy"] | None = Field(None, description="json (default) or npy [N, K, *latent_shape]")


class ReconstructQuery(QueryModel):
    model: ModelName = None
    normalize: Normalize = True
    sample: bool = Field(False, description="false: decode mu; true: decode z = mu + sigma * eps")
    seed: Seed = None
    format: ImageFormat = None


class InterpolateQuery(QueryModel):
    model: ModelName = None
    steps: int = Field(8, ge=2, description="Frames, both endpoints included (2..VAE_MAX_WALK_STEPS)")
    method: Literal["linear", "slerp"] = Field("linear", description="Straight line, or along the sphere")
    seeds: str | None = Field(
        None,
        pattern=r"^\d{1,18},\d{1,18}$",
        description="Endpoints from two seeds, 'A,B': /sample?n=1&seed=A's latent, and B's",
    )
    temperature: float = Field(1.0, gt=0, le=10, description="For seed endpoints: the prior's standard deviation T")
    normalize: Normalize = True
    format: Literal["png", "json", "npy", "gif", "webp"] | None = Field(
        None, description="png (one row, default), json, npy [steps, C, H, W], or an animated gif or webp"
    )


class TraverseQuery(QueryModel):
    model: ModelName = None
    dims: str | None = Field(
        None,
        pattern=r"^\d{1,6}(,\d{1,6})*$",
        description="Flat latent dimensions to sweep, '0,5,7'; default: the most active",
    )
    count: int = Field(8, ge=1, description="How many of the most active dimensions, when dims is not given")
    steps: int = Field(7, ge=2, description="Values per dimension (2..VAE_MAX_WALK_STEPS)")
    span: float = Field(3.0, gt=0, le=10, description="Each dimension is swept over [-span, span]")
    seed: Seed = Field(None, description="Start from the latent /sample?n=1&seed=S draws (default: the origin)")
    normalize: Normalize = True
    format: ImageFormat = None


def check_sample_n(n: int, limit: int) -> int:
    if n > limit:
        raise InvalidRequest(f"query parameter 'n': {n} is too many; allowed 1..{limit}", {"max": limit})
    return n


# --- bodies --------------------------------------------------------------------------------


def header_value(request: Request, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case), straight from the ASGI scope: Starlette's
    Headers decodes every name it compares, which costs a small request more than the lookup."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value
    return None


def media_type_of(request: Request) -> str:
    value = header_value(request, b"content-type")
    return "" if value is None else _media_type(value)


@functools.lru_cache(maxsize=256)  # clients send a few values over and over
def _media_type(value: bytes) -> str:
    return value.decode("latin-1").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int, setting: str) -> bytes:
    """The whole body, refusing as soon as it is known to exceed `limit` bytes."""
    declared = header_value(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is {declared.decode()} bytes; at most {limit} ({setting})")
    # ASGI receive() straight: a small body arrives in one message, returned as is.
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes ({setting})")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


class Upload(NamedTuple):
    filename: str | None
    data: bytes


async def read_uploads(request: Request, max_bytes: int, max_images: int) -> list[Upload]:
    """Every uploaded image, in order."""
    media_type = media_type_of(request)
    if media_type != "multipart/form-data" and media_type not in RAW_IMAGE_TYPES:
        raise UnsupportedMediaType(f"Content-Type {media_type or '(none)'} is not accepted; send {IMAGE_TYPES}")
    body = await read_body(request, max_bytes, "VAE_MAX_UPLOAD_BYTES")
    if media_type != "multipart/form-data":
        if not body:
            raise InvalidImage("empty body; send one image, or multipart/form-data with image files")
        return [Upload(filename=None, data=body)]
    return split_multipart(body, request.headers.get("content-type", ""), max_images)


# A form of uploads carries files; this many plain fields beside them is plenty.
MAX_FORM_FIELDS = 1000


def split_multipart(body: bytes, content_type: str, max_files: int) -> list[Upload]:
    """The file parts of a whole multipart/form-data body (RFC 7578), in order. The body is already
    in memory, within its limit, so this splits it on the boundary instead of streaming it through
    a general form parser: a part is a file when its Content-Disposition has a filename parameter,
    as Starlette decides; other parts are skipped."""
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise InvalidRequest("malformed multipart body (no boundary= in its Content-Type)")
    delimiter = b"--" + boundary
    # The first delimiter opens the body or follows a preamble's CRLF; later ones follow CRLF.
    if body.startswith(delimiter):
        at = 0
    elif (at := body.find(b"\r\n" + delimiter)) >= 0:
        at += 2
    else:
        raise InvalidRequest("malformed multipart body (the boundary never occurs in it)")
    uploads: list[Upload] = []
    fields = 0
    separator = b"\r\n" + delimiter
    while True:
        at += len(delimiter)
        if body.startswith(b"--", at):
            break  # the close delimiter; what follows is an epilogue
        line_end = body.find(b"\r\n", at)
        if line_end < 0 or body[at:line_end].strip(b" \t"):
            raise InvalidRequest("malformed multipart body (a boundary line is cut off or has text after it)")
        start = line_end + 2
        end = body.find(separator, start)
        if end < 0:
            raise InvalidRequest("malformed multipart body (no closing boundary; the body is cut off)")
        filename = _part_filename(body, start, end)
        if filename is None:
            fields += 1
            if fields > MAX_FORM_FIELDS:
                raise InvalidRequest(f"malformed multipart body (more than {MAX_FORM_FIELDS} fields)")
        else:
            if len(uploads) == max_files:
                raise PayloadTooLarge(f"too many images; at most {max_files} per request (VAE_MAX_UPLOAD_IMAGES)")
            name, content = filename
            uploads.append(Upload(filename=name, data=content))
        at = end + 2
    if not uploads:
        raise InvalidRequest("no image file in the multipart body; send one or more file parts")
    return uploads


def _part_filename(body: bytes, start: int, end: int) -> tuple[str, bytes] | None:
    """(filename, content) of the part body[start:end] when it is a file, else None."""
    head_end = -1 if body.startswith(b"\r\n", start) else body.find(b"\r\n\r\n", start, end)
    if head_end < 0:
        raise InvalidRequest("malformed multipart body (a part has no headers, or they do not end in a blank line)")
    disposition = None
    for line in body[start:head_end].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            raise InvalidRequest("malformed multipart body (a part header line has no colon)")
        if name.strip().lower() == b"content-disposition":
            disposition = value.strip()
    if disposition is None:
        raise InvalidRequest("malformed multipart body (a part has no Content-Disposition header)")
    filename = parse_options_header(disposition)[1].get(b"filename")
    if filename is None:
        return None
    return filename.decode("utf-8", "replace"), body[head_end + 4 : end]


@functools.lru_cache(maxsize=64)  # each request's parse names it for its messages; a few shapes repeat
def _shape_text(latent_shape: tuple[int, ...]) -> str:
    return "[N, " + ", ".join(map(str, latent_shape)) + "]"


def _brackets(body: bytes) -> int:
    """How many `[` a body holds: bytes.count for a small one, numpy's vector compare for a large one."""
    return body.count(b"[") if len(body) < 8192 else int(np.count_nonzero(np.frombuffer(body, np.uint8) == 0x5B))


def json_latents(body: bytes, latent_dim: int, max_rows: int) -> np.ndarray | None:
    """A JSON body that is exactly {"latents": [D numbers] or [[D numbers] x N]}, finite within
    float32 -> float32 [N, D], read by simdjson straight into one buffer: no Python float per
    number, which is most of the cost of orjson plus numpy for many rows. None for anything else,
    which the general path (parse_latents) then reads or explains."""
    try:
        document = simdjson.Parser().parse(body)  # a parser per call: one holds its last document
        if not isinstance(document, simdjson.Object) or len(document) != 1:
            return None
        rows = document["latents"]
        if not isinstance(rows, simdjson.Array) or not rows:
            return None
        nested = isinstance(rows[0], simdjson.Array)
        count = len(rows) if nested else 1
        if nested:  # [N, D]
            if count > max_rows or not all(isinstance(row, simdjson.Array) and len(row) == latent_dim for row in rows):
                return None
        elif len(rows) != latent_dim:  # else one latent without the batch axis
            return None
        # as_buffer flattens nested lists; the one key holds no bracket, so one per row means none.
        if _brackets(body) != (count + 1 if nested else 1):
            return None
        flat = np.frombuffer(rows.as_buffer(of_type="d"), dtype=np.float64)  # refuses true, null, strings
    except (ValueError, TypeError, KeyError, RuntimeError):  # invalid JSON, NaN, 1e400, ints beyond 64 bits
        return None
    # Each |v| is at most the vector's norm, so one dot product clears a small body at once. A large
    # one (BLAS may thread its dot) or one with a huge value takes latents_array's exact bounds.
    cleared = flat.size <= DOT_CHECK_LIMIT and flat.dot(flat) <= FLOAT32_MAX_SQUARED
    if not cleared and not (-FLOAT32_MAX <= flat.min() and flat.max() <= FLOAT32_MAX):
        return None
    return flat.astype(np.float32).reshape(count, latent_dim)


def latents_array(raw: object, latent_shape: tuple[int, ...], max_rows: int, accepts_flat: bool = True) -> np.ndarray:
    """A nested list or array -> float32 [N, *latent_shape], validated. One latent without the batch
    axis is accepted; a spatial latent given as flat vectors only when the card allows it."""
    expected = _shape_text(latent_shape)
    details = {"expected_shape": ["N", *latent_shape], "expected_latent_dim": math.prod(latent_shape)}
    array = raw if isinstance(raw, np.ndarray) else np.array(raw)
    if array.dtype.kind not in "iuf":
        raise InvalidRequest(f"latents must be numbers, shaped {expected}", details)
    size = math.prod(latent_shape)
    if array.shape == tuple(latent_shape):
        array = array[None]
    elif len(latent_shape) > 1 and accepts_flat and array.ndim in (1, 2) and array.shape[-1] == size:
        array = array.reshape(-1, *latent_shape)
    if array.ndim != len(latent_shape) + 1 or tuple(array.shape[1:]) != tuple(latent_shape):
        raise InvalidRequest(f"latents have shape {list(array.shape)}; expected {expected}", details)
    if not 1 <= len(array) <= max_rows:
        raise InvalidRequest(
            f"{len(array)} latent rows; allowed 1..{max_rows} (VAE_MAX_SAMPLE_N)", {**details, "max_rows": max_rows}
        )
    # One reduction rejects NaN (max propagates it), inf, and values that would overflow float32.
    if not np.maximum.reduce(np.abs(array), axis=None) <= FLOAT32_MAX:
        raise InvalidRequest(
            f"latents contain NaN or inf (or values beyond float32); expected finite {expected}", details
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def parse_latents(
    body: bytes, media_type: str, latent_shape: tuple[int, ...], max_rows: int, accepts_flat: bool = True
) -> np.ndarray:
    """A /decode body (JSON {"latents": ...} or .npy) -> float32 [N, *latent_shape]."""
    expected = _shape_text(latent_shape)
    if media_type not in ("application/json", "application/x-npy", "application/octet-stream"):
        raise UnsupportedMediaType(f"Content-Type {media_type or '(none)'} is not accepted; send {LATENT_TYPES}")
    if media_type != "application/json":
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception:  # numpy raises several types for a bad header or truncated data
            raise InvalidRequest(f"body is not a valid .npy array; send float32 {expected}") from None
        if not isinstance(array, np.ndarray):
            raise InvalidRequest(f"body must be a single .npy array {expected}, not an archive")
        return latents_array(array, latent_shape, max_rows, accepts_flat)
    if len(latent_shape) == 1:
        fast = json_latents(body, latent_shape[0], max_rows)
        if fast is not None:
            return fast
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson refuses what the standard library reads (NaN, Infinity, 1e400, UTF-16); read it
        # that way so those get latents_array's precise message, and only then call it invalid.
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidRequest(f'body is not valid JSON; send {{"latents": {expected} numbers}}') from None
    if not isinstance(payload, dict) or "latents" not in payload:
        raise InvalidRequest(f'JSON body must be an object {{"latents": {expected} numbers}}')
    try:
        return latents_array(payload["latents"], latent_shape, max_rows, accepts_flat)
    except (ValueError, TypeError):  # ragged lists
        raise InvalidRequest(
            f"latents must be a rectangular {expected} list of numbers",
            {"expected_shape": ["N", *latent_shape]},
        ) from None


async def read_latents(
    request: Request,
    latent_shape: tuple[int, ...],
    max_bytes: int,
    max_rows: int,
    accepts_flat: bool = True,
    admit: Callable[[bytes, str], None] | None = None,
) -> np.ndarray:
    """`admit(body, media_type)`, when given, runs between reading the body and parsing it."""
    media_type = media_type_of(request)
    if media_type not in ("application/json", "application/x-npy", "application/octet-stream"):
        raise UnsupportedMediaType(f"Content-Type {media_type or '(none)'} is not accepted; send {LATENT_TYPES}")
    body = await read_body(request, max_bytes, "VAE_MAX_JSON_BYTES")
    if admit is not None:
        admit(body, media_type)
    return parse_latents(body, media_type, latent_shape, max_rows, accepts_flat)


def json_rows_at_least(body: bytes, latent_shape: tuple[int, ...]) -> int:
    """The fewest latent rows a JSON latents body can hold, from its brackets alone (a JSON
    number holds none): a bound cheap enough to refuse, before parsing, what a queue cannot take.
    One row adds at most 1 + d1 + d1*d2 + ... brackets (fully nested). A body with more than the
    latents (other keys, strings) may count more; it is refused either way, 429 or 422."""
    brackets = _brackets(body)
    per_row = sum(math.prod(latent_shape[:depth]) for depth in range(len(latent_shape)))
    return max(1, (brackets - 1) // per_row)  # the outer list of a batch adds one


def parse_model_inputs(body: bytes, image_shape: tuple[int, int, int], max_images: int) -> np.ndarray:
    """A .npy batch of model inputs (float [N, C, H, W] in [0, 1], or one [C, H, W]) -> float32, validated."""
    expected = "[N, " + ", ".join(map(str, image_shape)) + "]"
    details = {"expected_shape": ["N", *image_shape]}
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception:  # numpy raises several types for a bad header or truncated data
        raise InvalidRequest(f"body is not a valid .npy array; send float32 {expected} in [0, 1]", details) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
        raise InvalidRequest(f"body must be one .npy array of numbers {expected} in [0, 1]", details)
    if array.shape == tuple(image_shape):
        array = array[None]
    if array.ndim != 4 or tuple(array.shape[1:]) != tuple(image_shape):
        raise InvalidRequest(f"model inputs have shape {list(array.shape)}; expected {expected}", details)
    if not 1 <= len(array) <= max_images:
        raise PayloadTooLarge(
            f"{len(array)} images; at most {max_images} per request (VAE_MAX_UPLOAD_IMAGES)", {"max": max_images}
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    # NaN fails both comparisons, so one check refuses it, inf and anything outside [0, 1].
    if not (array.min() >= 0.0 and array.max() <= 1.0):
        raise InvalidRequest(f"model inputs must be finite pixels in [0, 1], shaped {expected}", details)
    return array


def check_steps(name: str, steps: int, limit: int) -> int:
    if steps > limit:
        raise InvalidRequest(f"query parameter {name!r}: {steps} is too many; allowed 2..{limit}", {"max": limit})
    return steps


def parse_seeds(text: str) -> tuple[int, int]:
    first, second = (int(part) for part in text.split(","))
    return first, second


class Endpoints(NamedTuple):
    """Where a walk starts and ends: two uploads, or two latents (from the body or seeds)."""

    uploads: list[Upload] | None = None
    latents: np.ndarray | None = None


async def read_endpoints(
    request: Request,
    seeds: str | None,
    latent_shape: tuple[int, ...],
    max_bytes: int,
    count: int,
    accepts_flat: bool,
) -> Endpoints | None:
    """`count` endpoints from the body (image uploads, or JSON {"latents": [...]}), or None when
    there is no body; a body together with seeds is refused (one kind of endpoint per request)."""
    media_type = media_type_of(request)
    declared = request.headers.get("content-length")
    if not media_type and (declared is None or declared == "0"):
        return None
    if seeds is not None:
        raise InvalidRequest(
            "give the endpoints one way: seeds in the query, or images or latents in the body, not both"
        )
    noun = "two endpoints" if count == 2 else "one start"
    if media_type == "application/json":
        body = await read_body(request, max_bytes, "VAE_MAX_JSON_BYTES")
        latents = parse_latents(body, media_type, latent_shape, count, accepts_flat)
        if len(latents) != count:
            raise InvalidRequest(
                f"{len(latents)} latents; send {noun}: {{'latents': {_shape_text(latent_shape)} with N = {count}}}"
            )
        return Endpoints(latents=latents)
    uploads = await read_uploads(request, max_bytes, count)
    if len(uploads) != count:
        raise InvalidRequest(f"{len(uploads)} images; send {noun}: exactly {count} image file(s)")
    return Endpoints(uploads=uploads)
