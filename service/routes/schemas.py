"""Typed request and response bodies, for validation where cheap and for the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.registry import ModelLimits


class ImagesJSON(BaseModel):
    model: str
    latent_dim: int
    latent_shape: list[int] = Field(description="Shape of one latent: [D], or [C, h, w] for a spatial latent")
    latents: list[Any] = Field(description="[N, *latent_shape] latents that were decoded")
    images: list[str] = Field(description="N base64 PNGs (8-bit grayscale, or RGB for colour models)")


class DecodeRequest(BaseModel):
    latents: list[Any] = Field(
        description="[N, *latent_shape] latents (GET /models gives each model's latent_shape); one latent may omit N"
    )


class EncodeResult(BaseModel):
    filename: str | None
    mu: list[Any] = Field(description="latent_shape numbers")
    logvar: list[Any]
    z: list[Any] | None = Field(None, description="Only when sample=true")


class EncodeJSON(BaseModel):
    model: str
    latent_dim: int
    latent_shape: list[int]
    results: list[EncodeResult]


class ReconstructResult(BaseModel):
    filename: str | None
    input: str = Field(description="base64 PNG of the model input after normalisation")
    image: str = Field(description="base64 PNG of the reconstruction")
    mse: float = Field(description="Mean squared error between input and reconstruction, pixels in [0, 1]")
    latent: list[Any] = Field(description="The latent that was decoded (mu, or a sample)")


class ReconstructJSON(BaseModel):
    model: str
    latent_dim: int
    latent_shape: list[int]
    results: list[ReconstructResult]


class ModelInfo(BaseModel):
    name: str
    card: dict[str, Any]
    provider: str
    image_shape: list[int] = Field(description="[C, H, W] of the model's images")
    latent_shape: list[int] = Field(description="[D], or [C, h, w] for a spatial latent")
    labels: list[str] | None = Field(None, description="Class names, when the model has classes")
    limits: ModelLimits
    inputs: dict[str, dict[str, list[int | str]]]
    outputs: dict[str, dict[str, list[int | str]]]


class ModelList(BaseModel):
    default: str
    models: list[ModelInfo]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    models: list[str]


NPY_CONTENT = {"application/x-npy": {"schema": {"type": "string", "format": "binary"}}}
IMAGE_CONTENT = {"image/png": {"schema": {"type": "string", "format": "binary"}}, **NPY_CONTENT}
IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": IMAGE_CONTENT, "description": "PNG grid, JSON or float32 .npy [N, C, H, W]"}
}
UPLOAD_CONTENT: dict[str, Any] = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
            "description": "One or more image files under any field name (file, files, ...)",
        }
    },
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}
UPLOAD_BODY = {"requestBody": {"required": True, "content": UPLOAD_CONTENT}}
LATENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DecodeRequest.model_json_schema()},
            "application/x-npy": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "float .npy [N, *latent_shape] or one latent",
                }
            },
        },
    }
}
