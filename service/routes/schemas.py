"""Typed request and response bodies, for validation where cheap and for the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ImagesJSON(BaseModel):
    model: str
    latent_dim: int
    latents: list[list[float]] = Field(description="[N, D] latents that were decoded")
    images: list[str] = Field(description="N base64 PNGs (8-bit grayscale)")


class DecodeRequest(BaseModel):
    latents: list[list[float]] = Field(description="[N, D] latents; D must equal the model's latent_dim")


class EncodeResult(BaseModel):
    filename: str | None
    mu: list[float]
    logvar: list[float]
    z: list[float] | None = Field(None, description="Only when sample=true")


class EncodeJSON(BaseModel):
    model: str
    latent_dim: int
    results: list[EncodeResult]


class ReconstructResult(BaseModel):
    filename: str | None
    input: str = Field(description="base64 PNG of the model input after normalisation")
    image: str = Field(description="base64 PNG of the reconstruction")
    mse: float = Field(description="Mean squared error between input and reconstruction, pixels in [0, 1]")
    latent: list[float] = Field(description="The latent that was decoded (mu, or a sample)")


class ReconstructJSON(BaseModel):
    model: str
    latent_dim: int
    results: list[ReconstructResult]


class ModelInfo(BaseModel):
    name: str
    card: dict[str, Any]
    provider: str
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


IMAGE_CONTENT = {
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "description": "One or more image files under any field name (file, files, ...)",
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
LATENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DecodeRequest.model_json_schema()},
            "application/x-npy": {"schema": {"type": "string", "format": "binary", "description": "float .npy [N, D] or [D]"}},
        },
    }
}
