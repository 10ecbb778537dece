"""One function per endpoint of docs/api.md: the `Call` to send and how to read its answer.

Bulk data travels as `.npy` both ways (`format=npy`, `application/x-npy`); images go up as
multipart `file` parts. Both clients build every request here, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from ._images import load_npy, npy_bytes, to_uploads
from ._transport import Call, error_body, unexpected_response
from .models import (
    DecodeResult,
    EncodeResult,
    Health,
    ModelInfo,
    ModelList,
    Readiness,
    ReconstructResult,
    SampleResult,
)

NPY = "application/x-npy"
UPLOAD_FIELD = "file"


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


def _image_headers(response: httpx.Response) -> dict[str, Any]:
    """The model that answered, from the `X-Model` / `X-Latent-Dim` headers of image answers."""
    latent_dim = response.headers.get("X-Latent-Dim")
    return {
        "model": response.headers.get("X-Model"),
        "latent_dim": int(latent_dim) if latent_dim and latent_dim.isdigit() else None,
    }


def _images(response: httpx.Response) -> np.ndarray:
    return _array(response).astype(np.float32, copy=False)


def sample(n: int, seed: int | None, temperature: float, model: str | None) -> Call[SampleResult]:
    def parse(response: httpx.Response) -> SampleResult:
        return SampleResult(
            images=_images(response), seed=seed, temperature=temperature, **_image_headers(response)
        )

    return Call(
        "POST",
        "/sample",
        parse,
        params={"n": n, "seed": seed, "temperature": temperature, "model": model, "format": "npy"},
        headers={"Accept": NPY},
    )


def decode(latents: Any, model: str | None) -> Call[DecodeResult]:
    sent = np.asarray(latents, dtype=np.float32)

    def parse(response: httpx.Response) -> DecodeResult:
        return DecodeResult(images=_images(response), latents=np.atleast_2d(sent), **_image_headers(response))

    return Call(
        "POST",
        "/decode",
        parse,
        params={"model": model, "format": "npy"},
        headers={"Accept": NPY, "Content-Type": NPY},
        content=npy_bytes(sent),
    )


def _upload_call(
    path: str, images: Any, model: str | None, normalize: bool, sample: bool, seed: int | None
) -> tuple[Call[np.ndarray], list[str | None]]:
    uploads = to_uploads(images)
    files = [(UPLOAD_FIELD, (upload.filename, upload.content, upload.content_type)) for upload in uploads]
    params = {"model": model, "normalize": normalize, "sample": sample, "seed": seed, "format": "npy"}
    call = Call("POST", path, _array, params=params, headers={"Accept": NPY}, files=files)
    return call, [upload.source_name for upload in uploads]


def encode(
    images: Any, model: str | None, normalize: bool, sample: bool, seed: int | None
) -> Call[EncodeResult]:
    upload, filenames = _upload_call("/encode", images, model, normalize, sample, seed)

    def parse(response: httpx.Response) -> EncodeResult:
        stacked = _array(response).astype(np.float32, copy=False)  # [N, K, D]
        names = response.headers.get("X-Latent-Fields", "mu,logvar,z" if sample else "mu,logvar")
        fields = {name.strip(): stacked[:, index] for index, name in enumerate(names.split(","))}
        if stacked.ndim != 3 or "mu" not in fields or "logvar" not in fields:
            problem = ValueError(f"shape {stacked.shape}, X-Latent-Fields {names!r}")
            raise unexpected_response(response, "float32 [N, K, D] with fields mu,logvar[,z]", problem)
        return EncodeResult(
            mu=fields["mu"],
            logvar=fields["logvar"],
            z=fields.get("z"),
            model=response.headers.get("X-Model") or model,
            latent_dim=stacked.shape[2],
            filenames=filenames,
        )

    return replace(upload, parse=parse)


def reconstruct(
    images: Any, model: str | None, normalize: bool, sample: bool, seed: int | None
) -> Call[ReconstructResult]:
    upload, filenames = _upload_call("/reconstruct", images, model, normalize, sample, seed)

    def parse(response: httpx.Response) -> ReconstructResult:
        return ReconstructResult(images=_images(response), filenames=filenames, **_image_headers(response))

    return replace(upload, parse=parse)


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
