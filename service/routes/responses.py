"""Shared response builders for image outputs (docs/api.md "Image outputs")."""

from __future__ import annotations

import functools

from fastapi import Response

from service import encoding
from service.inference import Decoded
from service.registry import LoadedModel


def _model_headers(name: str, latent_dim: int) -> dict[str, str]:
    return {"X-Model": name, "X-Latent-Dim": str(latent_dim)}


def model_headers(model: LoadedModel) -> dict[str, str]:
    return _model_headers(model.name, model.latent_dim)


@functools.lru_cache(maxsize=256)
def _raw_headers(model: str, latent_dim: int, media_type: str) -> tuple[tuple[bytes, bytes], ...]:
    headers = {"Content-Type": media_type, **_model_headers(model, latent_dim)}
    return tuple((key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers.items())


class ImageResponse(Response):
    """200 with the model headers, built once per (model, media type) instead of per response:
    Starlette's Response re-encodes every header each time, which showed in /decode's profile."""

    def __init__(self, content: bytes, model: LoadedModel, media_type: str) -> None:
        self.status_code = 200
        self.background = None
        self.body = content
        self.raw_headers = [(b"content-length", str(len(content)).encode()), *_raw_headers(model.name, model.latent_dim, media_type)]


def image_response(model: LoadedModel, fmt: str, decoded: Decoded, json_body) -> Response:
    """PNG grid, float32 .npy [N, C, H, W], or the JSON body that `json_body()` builds."""
    if fmt == "png":
        content = encoding.png_grid_bytes(decoded.pixels)
    elif fmt == "npy":
        content = encoding.npy_bytes(decoded.images)
    else:
        content = json_body()
    return ImageResponse(content, model, encoding.MEDIA_TYPES[fmt])
