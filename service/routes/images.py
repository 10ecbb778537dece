"""POST /encode and POST /reconstruct: uploaded images in."""

from __future__ import annotations

import asyncio
from typing import Literal

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import Field

from service import encoding
from service.bodies import read_uploads
from service.config import Settings
from service.deps import resolve
from service.errors import ApiError, error_responses
from service.imaging import ImageRejected, prepare_images
from service.inference import posterior_sample
from service.query import ImageFormat, ModelName, Normalize, QueryModel, Seed, openapi_parameters
from service.registry import LoadedModel
from service.routes.generate import IMAGE_FORMATS, IMAGE_RESPONSES
from service.routes.responses import image_response, model_headers
from service.routes.schemas import UPLOAD_BODY, EncodeJSON, ReconstructJSON
from service.state import ServiceState

router = APIRouter(tags=["images"])

# Small uploads decode faster inline than the hop to a thread costs.
INLINE_DECODE_BYTES = 64 * 1024


class EncodeQuery(QueryModel):
    model: ModelName = None
    normalize: Normalize = True
    sample: bool = Field(False, description="true: also draw z = mu + sigma * eps with default_rng(seed)")
    seed: Seed = None
    format: Literal["json", "npy"] | None = Field(None, description="json (default) or npy [N, K, D]")


class ReconstructQuery(QueryModel):
    model: ModelName = None
    normalize: Normalize = True
    sample: bool = Field(False, description="false: decode mu; true: decode z = mu + sigma * eps")
    seed: Seed = None
    format: ImageFormat = None


async def _model_inputs(
    request: Request, service: ServiceState, model: LoadedModel, normalize: bool
) -> tuple[list[str | None], np.ndarray]:
    settings = service.settings
    uploads = await read_uploads(request, settings.max_upload_bytes, settings.max_upload_images)
    if len(uploads) > settings.max_upload_images:
        raise ApiError(
            413, "payload_too_large",
            f"{len(uploads)} images; at most {settings.max_upload_images} per request (VAE_MAX_UPLOAD_IMAGES)",
        )
    blobs = [data for _, data in uploads]
    args = (blobs, model.card.preprocessing, model.image_shape, settings.max_image_pixels, normalize)
    try:
        if sum(map(len, blobs)) <= INLINE_DECODE_BYTES:
            images = prepare_images(*args)
        else:
            images = await asyncio.get_running_loop().run_in_executor(service.image_executor, prepare_images, *args)
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    return [name for name, _ in uploads], images


@router.post(
    "/encode",
    response_model=EncodeJSON,
    responses={
        200: {"content": {"application/x-npy": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(404, 413, 415, 422, 429, 503, 504),
    },
    openapi_extra={**UPLOAD_BODY, "parameters": openapi_parameters(EncodeQuery)},
    summary="Encode uploaded images to mu and logvar (and a sampled z on request)",
)
async def encode(request: Request) -> Response:
    query, service, model = resolve(request, EncodeQuery)
    fmt = encoding.negotiate(query.format, request.headers.get("accept"), ("json", "npy"), "json")
    filenames, images = await _model_inputs(request, service, model, query.normalize)
    encoded = await service.engine.encode(model, images)
    z = posterior_sample(encoded, query.seed) if query.sample else None
    headers = model_headers(model)
    if fmt == "npy":
        fields = [encoded.mu, encoded.logvar] + ([z] if z is not None else [])
        headers["X-Latent-Fields"] = "mu,logvar,z" if z is not None else "mu,logvar"
        return Response(encoding.npy_bytes(np.stack(fields, axis=1)), media_type="application/x-npy", headers=headers)
    mus, logvars = encoded.mu.tolist(), encoded.logvar.tolist()
    zs = z.tolist() if z is not None else None
    results = []
    for index, filename in enumerate(filenames):
        result = {"filename": filename, "mu": mus[index], "logvar": logvars[index]}
        if zs is not None:
            result["z"] = zs[index]
        results.append(result)
    body = {"model": model.name, "latent_dim": model.latent_dim, "results": results}
    return Response(encoding.json_bytes(body), media_type="application/json", headers=headers)


@router.post(
    "/reconstruct",
    response_model=ReconstructJSON,
    responses={**IMAGE_RESPONSES, **error_responses(404, 413, 415, 422, 429, 503, 504)},
    openapi_extra={**UPLOAD_BODY, "parameters": openapi_parameters(ReconstructQuery)},
    summary="Encode then decode uploaded images (mu by default, a sample on request)",
)
async def reconstruct(request: Request) -> Response:
    query, service, model = resolve(request, ReconstructQuery)
    fmt = encoding.negotiate(query.format, request.headers.get("accept"), IMAGE_FORMATS, "png")
    filenames, inputs = await _model_inputs(request, service, model, query.normalize)
    encoded = await service.engine.encode(model, inputs)
    latents = posterior_sample(encoded, query.seed) if query.sample else encoded.mu
    decoded = await service.engine.decode(model, latents)

    def json_body() -> bytes:
        errors = ((inputs.astype(np.float64) - decoded.images) ** 2).reshape(len(inputs), -1).mean(axis=1).tolist()
        input_pngs = encoding.b64_pngs(encoding.to_uint8(inputs))
        output_pngs = encoding.b64_pngs(decoded.pixels)
        latent_rows = latents.tolist()
        results = [
            {
                "filename": filename,
                "input": input_pngs[index],
                "image": output_pngs[index],
                "mse": errors[index],
                "latent": latent_rows[index],
            }
            for index, filename in enumerate(filenames)
        ]
        return encoding.json_bytes({"model": model.name, "latent_dim": model.latent_dim, "results": results})

    return image_response(model, fmt, decoded, json_body)


def document_limits(schema: dict, settings: Settings) -> None:
    """State the configured upload limit in the OpenAPI schema (a setting, not a constant)."""
    for path in ("/encode", "/reconstruct"):
        form = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        form["properties"]["file"]["maxItems"] = settings.max_upload_images
