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


class ScoreResult(BaseModel):
    filename: str | None
    neg_elbo: float = Field(description="-ELBO in nats: reconstruction + kl")
    reconstruction: float = Field(description="-E_q log p(x|z) in nats, over the k samples")
    kl: float = Field(description="KL(q(z|x) || p(z)) in nats under the model's prior")
    nll: float = Field(description="Importance-sampled -log p(x) in nats (k samples)")
    bits_per_dim: float = Field(description="nll in bits per pixel value")
    complexity_bits: float = Field(description="The model input's length as a PNG at the highest compression")
    complexity_corrected: float = Field(description="neg_elbo in bits minus complexity_bits")
    percentile: float | None = Field(description="Percent of the model's test set with a neg_elbo at most this one")
    outlier_score: float | None = Field(description="0..100: test-set percentile of the two-sided outlier statistic")
    outlier: bool | None = Field(description="outlier_score above the configured percentile; null without a table")


class ScoreJSON(BaseModel):
    model: str
    k: int
    seed: int
    prior: str = Field(description="The prior p(z) the scores use: the card's prior.default")
    outlier_percentile: float = Field(description="VAE_OUTLIER_PERCENTILE")
    table: dict[str, Any] | None = Field(description="How the model's test-set table was made; null without one")
    results: list[ScoreResult]


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


class Projection(BaseModel):
    """models/<name>/projection.json (docs/model-card.md): the test set's encoder means on their
    first two principal components, written by `python -m training project`."""

    schema_version: int
    model: str
    kind: str = Field(description="pca")
    latent_shape: list[int]
    mean: list[float] = Field(description="D values: the mean of every test image's encoder mean")
    components: list[list[float]] = Field(description="[pc1, pc2], unit and orthogonal, D values each")
    explained_variance: list[float]
    explained_variance_ratio: list[float] = Field(description="Share of the means' total variance along pc1, pc2")
    labels: list[str] | None = Field(description="Class names, when the test set has classes")
    points: list[list[float]] = Field(description="[u, v] of the drawn test images")
    point_labels: list[int] | None = Field(description="Class index of each point (into labels)")
    point_indices: list[int] = Field(description="Each point's index in the test set")
    method: dict[str, str]
    command: str


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
