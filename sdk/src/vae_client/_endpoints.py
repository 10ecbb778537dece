"""One function per endpoint of docs/api.md: the `Call` to send and how to read its answer.

Bulk data travels as `.npy` both ways (`format=npy`, `application/x-npy`); images go up as
multipart `file` parts. Both clients build every request here, so they cannot drift apart.
Shapes come from the model that answered (`X-Latent-Shape`, the arrays themselves), never from
assumptions about it: images are [N, C, H, W], latents [N, *latent_shape].
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import numpy as np

from ._images import Upload, load_npy, npy_bytes, to_uploads
from ._transport import Call, Plan, error_body, unexpected_response
from .models import (
    DecodeResult,
    EncodeResult,
    Health,
    ImageScore,
    ModelInfo,
    ModelList,
    Readiness,
    ReconstructResult,
    SampleResult,
    ScoreResult,
    ScoreTable,
    TraverseResult,
    WalkResult,
)

NPY = "application/x-npy"
UPLOAD_FIELD = "file"

T = TypeVar("T")


def _array(response: httpx.Response) -> np.ndarray:
    try:
        return load_npy(response.content)
    except (ValueError, EOFError, OSError) as problem:
        raise unexpected_response(response, "a .npy array", problem) from problem


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as problem:
        raise unexpected_response(response, "JSON", problem) from problem


def _sizes(text: str | None) -> tuple[int, ...] | None:
    """The sizes in a header such as `2,3,4`, as (2, 3, 4); None if it is missing or malformed."""
    parts = [part.strip() for part in (text or "").split(",")]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        return None
    return tuple(int(part) for part in parts)


def _latent_shape(response: httpx.Response) -> tuple[int, ...] | None:
    """`X-Latent-Shape`, else (`X-Latent-Dim`,) from a server that sends only that."""
    return _sizes(response.headers.get("X-Latent-Shape")) or _sizes(response.headers.get("X-Latent-Dim"))


def _image_headers(response: httpx.Response) -> dict[str, Any]:
    """The model that answered and its latent shape, from the headers of image answers."""
    latent_shape = _latent_shape(response)
    return {
        "model": response.headers.get("X-Model"),
        "latent_dim": None if latent_shape is None else math.prod(latent_shape),
        "latent_shape": latent_shape,
    }


def _images(response: httpx.Response) -> np.ndarray:
    images = _array(response).astype(np.float32, copy=False)
    if images.ndim != 4:
        raise unexpected_response(response, "float32 images [N, C, H, W]", ValueError(f"shape {images.shape}"))
    return images


def sample(
    n: int,
    seed: int | None,
    temperature: float,
    model: str | None,
    prior: str | None = None,
    label: str | int | None = None,
) -> Call[SampleResult]:
    """`prior` ("standard" or "mixture") and `label` (a class name or index) go as given: the
    service knows the model's stored priors and classes, and names them when one is wrong."""

    def parse(response: httpx.Response) -> SampleResult:
        return SampleResult(
            images=_images(response),
            seed=seed,
            temperature=temperature,
            prior=prior,
            label=label,
            **_image_headers(response),
        )

    params = {"n": n, "seed": seed, "temperature": temperature, "model": model, "prior": prior, "label": label}
    return Call("POST", "/sample", parse, params={**params, "format": "npy"}, headers={"Accept": NPY})


def _latents_to_send(latents: Any) -> np.ndarray:
    """float32 latents from an array or nested lists, in any shape the service takes: [D], [N, D],
    [C', h, w] or [N, C', h, w]. The server checks the shape against the model's and names the
    expected one when it is wrong."""
    try:
        array = np.asarray(latents, dtype=np.float32)
    except (TypeError, ValueError) as problem:  # ragged lists, strings, objects
        raise ValueError(f"latents must be a rectangular array of numbers ({problem})") from None
    if array.ndim == 0 or array.size == 0:
        raise ValueError(f"latents must hold at least one latent, got shape {list(array.shape)}")
    return array


def _as_sent(sent: np.ndarray, rows: int, latent_shape: tuple[int, ...] | None) -> np.ndarray:
    """The latents that were decoded, [N, *latent_shape]: what was sent, with its batch axis
    (one latent had none) and in the model's shape (flat vectors for a spatial latent)."""
    if latent_shape is not None and sent.size == rows * math.prod(latent_shape):
        return sent.reshape(rows, *latent_shape)
    if sent.ndim > 1 and len(sent) == rows:  # no shape header: trust the batch axis that was sent
        return sent
    return sent[None] if rows == 1 else sent


def decode(latents: Any, model: str | None) -> Call[DecodeResult]:
    sent = _latents_to_send(latents)

    def parse(response: httpx.Response) -> DecodeResult:
        headers = _image_headers(response)
        images = _images(response)
        return DecodeResult(images=images, latents=_as_sent(sent, len(images), headers["latent_shape"]), **headers)

    return Call(
        "POST",
        "/decode",
        parse,
        params={"model": model, "format": "npy"},
        headers={"Accept": NPY, "Content-Type": NPY},
        content=npy_bytes(sent),
    )


def _upload_plan(
    path: str,
    images: Any,
    options: dict[str, Any],
    max_images: int,
    parse: Callable[[httpx.Response, list[Upload], Any], T],
    merge: Callable[[list[T]], T],
) -> Plan[T, T]:
    """Multipart `file` parts, at most `max_images` per request (the service's upload limit).

    With a seed, request k of a split upload uses seed + k, so its draws do not repeat the first's.
    """
    uploads = to_uploads(images)
    if max_images < 1:
        raise ValueError(f"max_upload_images must be >= 1, got {max_images}")
    calls = []
    for index, start in enumerate(range(0, len(uploads), max_images)):
        part = uploads[start : start + max_images]
        seed = options["seed"]
        params = {**options, "seed": None if seed is None else seed + index, "format": "npy"}
        files = [(UPLOAD_FIELD, (upload.filename, upload.content, upload.content_type)) for upload in part]
        read = partial(parse, uploads=part, sample=options["sample"])  # type: ignore[call-arg]  # parse's names
        calls.append(Call("POST", path, read, params=params, headers={"Accept": NPY}, files=files))
    return Plan(calls, merge)


def _names(uploads: list[Upload]) -> list[str | None]:
    return [upload.source_name for upload in uploads]


def _parse_encoding(response: httpx.Response, uploads: list[Upload], sample: bool) -> EncodeResult:
    stacked = _array(response).astype(np.float32, copy=False)  # [N, K, *latent_shape]
    names = response.headers.get("X-Latent-Fields", "mu,logvar,z" if sample else "mu,logvar")
    fields = [name.strip() for name in names.split(",")]
    if stacked.ndim < 3 or stacked.shape[1] != len(fields) or not {"mu", "logvar"} <= set(fields):
        problem = ValueError(f"shape {stacked.shape}, X-Latent-Fields {names!r}")
        raise unexpected_response(response, "float32 [N, K, *latent_shape] with fields mu,logvar[,z]", problem)
    arrays = {name: stacked[:, index] for index, name in enumerate(fields)}
    latent_shape = tuple(stacked.shape[2:])  # the array says it, whatever the headers
    return EncodeResult(
        mu=arrays["mu"],
        logvar=arrays["logvar"],
        z=arrays.get("z"),
        model=response.headers.get("X-Model"),
        latent_dim=math.prod(latent_shape),
        latent_shape=latent_shape,
        filenames=_names(uploads),
    )


def _merge_encodings(parts: list[EncodeResult]) -> EncodeResult:
    if len(parts) == 1:
        return parts[0]
    return EncodeResult(
        mu=np.concatenate([part.mu for part in parts]),
        logvar=np.concatenate([part.logvar for part in parts]),
        z=None if parts[0].z is None else np.concatenate([part.z for part in parts]),
        model=parts[0].model,
        latent_dim=parts[0].latent_dim,
        latent_shape=parts[0].latent_shape,
        filenames=[name for part in parts for name in part.filenames],
    )


def _parse_reconstruction(response: httpx.Response, uploads: list[Upload], sample: bool) -> ReconstructResult:
    return ReconstructResult(images=_images(response), filenames=_names(uploads), **_image_headers(response))


def _merge_reconstructions(parts: list[ReconstructResult]) -> ReconstructResult:
    if len(parts) == 1:
        return parts[0]
    return ReconstructResult(
        images=np.concatenate([part.images for part in parts]),
        filenames=[name for part in parts for name in part.filenames],
        model=parts[0].model,
        latent_dim=parts[0].latent_dim,
        latent_shape=parts[0].latent_shape,
    )


def encode(
    images: Any, model: str | None, normalize: bool, sample: bool, seed: int | None, max_images: int
) -> Plan[EncodeResult, EncodeResult]:
    options = {"model": model, "normalize": normalize, "sample": sample, "seed": seed}
    return _upload_plan("/encode", images, options, max_images, _parse_encoding, _merge_encodings)


def reconstruct(
    images: Any, model: str | None, normalize: bool, sample: bool, seed: int | None, max_images: int
) -> Plan[ReconstructResult, ReconstructResult]:
    options = {"model": model, "normalize": normalize, "sample": sample, "seed": seed}
    return _upload_plan("/reconstruct", images, options, max_images, _parse_reconstruction, _merge_reconstructions)


def _parse_scores(response: httpx.Response, uploads: list[Upload]) -> ScoreResult:
    body = _json(response)
    try:
        rows = body["results"]
        if not isinstance(rows, list) or len(rows) != len(uploads):
            raise ValueError(f"{len(rows) if isinstance(rows, list) else 'no'} results for {len(uploads)} images")
        table = body.get("table")
        percentile = body.get("outlier_percentile")
        return ScoreResult(
            results=[ImageScore.from_json(row, name) for row, name in zip(rows, _names(uploads), strict=True)],
            model=body.get("model"),
            k=int(body["k"]),
            seed=int(body["seed"]),
            prior=body.get("prior"),
            outlier_percentile=None if percentile is None else float(percentile),
            table=None if table is None else ScoreTable.from_json(table),
        )
    except (KeyError, TypeError, ValueError) as problem:
        raise unexpected_response(response, "a /score JSON body with one result per image", problem) from problem


def _merge_scores(parts: list[ScoreResult]) -> ScoreResult:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return ScoreResult(
        results=[row for part in parts for row in part.results],
        model=first.model,
        k=first.k,
        seed=first.seed,
        prior=first.prior,
        outlier_percentile=first.outlier_percentile,
        table=first.table,
    )


def score(
    images: Any, k: int, seed: int, normalize: bool, model: str | None, max_images: int
) -> Plan[ScoreResult, ScoreResult]:
    """Multipart `file` parts, at most `max_images` per request, like encode's; arrays go up as
    PNG uploads as they do for encode. Every request uses the same seed: the service draws one
    set of k importance samples per request that all its images share, so an image scores the
    same whichever request carries it."""
    uploads = to_uploads(images)
    if max_images < 1:
        raise ValueError(f"max_upload_images must be >= 1, got {max_images}")
    params = {"model": model, "k": k, "seed": seed, "normalize": normalize}
    calls = []
    for start in range(0, len(uploads), max_images):
        part = uploads[start : start + max_images]
        files = [(UPLOAD_FIELD, (upload.filename, upload.content, upload.content_type)) for upload in part]
        read = partial(_parse_scores, uploads=part)
        calls.append(Call("POST", "/score", read, params=params, headers={"Accept": "application/json"}, files=files))
    return Plan(calls, _merge_scores)


def models() -> Call[ModelList]:
    def parse(response: httpx.Response) -> ModelList:
        body = _json(response)
        return ModelList(default=body["default"], models=[ModelInfo.from_json(item) for item in body["models"]])

    return Call("GET", "/models", parse)


def model(name: str) -> Call[ModelInfo]:
    return Call("GET", f"/models/{quote(name, safe='')}", lambda response: ModelInfo.from_json(_json(response)))


def health() -> Call[Health]:
    return Call("GET", "/health", lambda response: Health(status=_json(response)["status"]))


def ready() -> Call[Readiness]:
    """`/ready` once, no retries: a 503 is the answer "not ready", not an error."""

    def parse(response: httpx.Response) -> Readiness:
        if response.status_code == 503:
            code, message, _ = error_body(response)
            return Readiness(ready=False, status=code or "not_ready", code=code, message=message)
        body = _json(response)
        return Readiness(ready=True, status=body.get("status", "ready"), models=list(body.get("models", [])))

    return Call("GET", "/ready", parse, retry=False, accept=frozenset({503}))


def _endpoint_kind(value: Any) -> str:
    """A walk's endpoint: an int is a seed, numbers in an array or list are a latent, anything
    else (a path, bytes, a PIL image) an image."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return "seed"
    if isinstance(value, (np.ndarray, list, tuple)):
        return "latent"
    return "image"


def interpolate(
    a: Any, b: Any, steps: int, method: str, temperature: float, normalize: bool, model: str | None
) -> Call[WalkResult]:
    kinds = {_endpoint_kind(a), _endpoint_kind(b)}
    if len(kinds) != 1:
        raise ValueError(
            f"both endpoints must be of one kind (two seeds, two latents or two images), got {sorted(kinds)}"
        )
    params: dict[str, Any] = {"steps": steps, "method": method, "model": model, "format": "npy"}
    request: dict[str, Any] = {}
    headers = {"Accept": NPY}
    kind = kinds.pop()
    if kind == "seed":
        params |= {"seeds": f"{int(a)},{int(b)}", "temperature": temperature}
    elif kind == "latent":
        latents = [_latents_to_send(a).tolist(), _latents_to_send(b).tolist()]
        request["content"] = json.dumps({"latents": latents}).encode()
        headers["Content-Type"] = "application/json"
    else:
        params["normalize"] = normalize
        request["files"] = [(UPLOAD_FIELD, (u.filename, u.content, u.content_type)) for u in to_uploads([a, b])]

    def parse(response: httpx.Response) -> WalkResult:
        return WalkResult(images=_images(response), method=method, **_image_headers(response))

    return Call("POST", "/interpolate", parse, params=params, headers=headers, **request)


def traverse(
    start: Any,
    dims: list[int] | None,
    count: int,
    steps: int,
    span: float,
    seed: int | None,
    normalize: bool,
    model: str | None,
) -> Call[TraverseResult]:
    params: dict[str, Any] = {"steps": steps, "span": span, "seed": seed, "model": model, "format": "npy"}
    params |= {"dims": ",".join(map(str, dims))} if dims else {"count": count}
    request: dict[str, Any] = {}
    if start is not None:
        params["normalize"] = normalize
        request["files"] = [(UPLOAD_FIELD, (u.filename, u.content, u.content_type)) for u in to_uploads([start])]

    def parse(response: httpx.Response) -> TraverseResult:
        text = response.headers.get("X-Traverse-Dims", "")
        swept = [int(part) for part in text.split(",") if part.strip().isdigit()]
        stacked = _array(response).astype(np.float32, copy=False)  # [dims, steps, C, H, W]
        if stacked.ndim != 5:
            raise unexpected_response(
                response, "float32 images [dims, steps, C, H, W]", ValueError(f"shape {stacked.shape}")
            )
        flat = stacked.reshape(-1, *stacked.shape[2:])
        return TraverseResult(images=flat, dims=swept, span=span, **_image_headers(response))

    return Call("POST", "/traverse", parse, params=params, headers={"Accept": NPY}, **request)
