"""Shared response builders for image outputs (docs/api.md "Image outputs")."""

from __future__ import annotations

from fastapi import Response

from service import encoding
from service.inference import Decoded
from service.registry import LoadedModel


def model_headers(model: LoadedModel) -> dict[str, str]:
    return {"X-Model": model.name, "X-Latent-Dim": str(model.latent_dim)}


def image_response(model: LoadedModel, fmt: str, decoded: Decoded, json_body) -> Response:
    """PNG grid, float32 .npy [N, C, H, W], or the JSON body that `json_body()` builds."""
    if fmt == "png":
        content = encoding.png_grid_bytes(decoded.pixels)
    elif fmt == "npy":
        content = encoding.npy_bytes(decoded.images)
    else:
        content = json_body()
    return Response(content, media_type=encoding.MEDIA_TYPES[fmt], headers=model_headers(model))
