"""POST /sample and POST /decode: latents in, images out."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from service import encoding
from service.bodies import read_latents
from service.config import Settings
from service.deps import find_model, format_from_query, resolve, service_of
from service.errors import ApiError, error_responses
from service.inference import prior_latents
from service.query import ImageFormat, ModelName, QueryModel, Seed, openapi_parameters
from service.routes.responses import image_response
from service.routes.schemas import IMAGE_CONTENT, LATENTS_BODY, ImagesJSON

router = APIRouter(tags=["generate"])

IMAGE_FORMATS = ("png", "json", "npy")
IMAGE_RESPONSES = {200: {"content": IMAGE_CONTENT, "description": "PNG grid, JSON or float32 .npy [N, 1, 28, 28]"}}


class SampleQuery(QueryModel):
    model: ModelName = None
    n: int = Field(16, ge=1, description="Number of images (1..VAE_MAX_SAMPLE_N)")
    seed: Seed = None
    temperature: float = Field(1.0, gt=0, le=10, description="Standard deviation T of the prior")
    format: ImageFormat = None


@router.post(
    "/sample",
    response_model=ImagesJSON,
    responses={**IMAGE_RESPONSES, **error_responses(404, 422, 429, 503, 504)},
    openapi_extra={"parameters": openapi_parameters(SampleQuery)},
    summary="Decode n latents drawn from N(0, T^2 I)",
)
async def sample(request: Request) -> Response:
    query, service, model = resolve(request, SampleQuery)
    limit = service.settings.max_sample_n
    if query.n > limit:
        raise ApiError(
            422, "invalid_request", f"query parameter 'n': {query.n} is too many; allowed 1..{limit}", {"max": limit}
        )
    fmt = encoding.negotiate(query.format, request.headers.get("accept"), IMAGE_FORMATS, "png")
    latents = prior_latents(query.n, model.latent_dim, query.seed, query.temperature)
    decoded = await service.engine.decode(model, latents)
    return image_response(
        model, fmt, decoded, lambda: encoding.images_json(model.name, model.latent_dim, latents, decoded.pixels)
    )


class DecodeQuery(QueryModel):
    """Documents /decode's query parameters; decode() checks them by hand, with the same rules."""

    model: ModelName = None
    format: ImageFormat = None


@router.post(
    "/decode",
    response_model=ImagesJSON,
    responses={**IMAGE_RESPONSES, **error_responses(404, 413, 415, 422, 429, 503, 504)},
    openapi_extra={**LATENTS_BODY, "parameters": openapi_parameters(DecodeQuery)},
    summary="Decode the given latents ([N, D] JSON or .npy)",
)
async def decode(request: Request) -> Response:
    # The hot path for many tiny requests: its two string query parameters are checked by hand
    # (same rules and error shape as FastAPI's), which saved ~100 us per request over FastAPI's
    # per-parameter validation, and skips even parse_query's model; DecodeQuery documents them.
    service = service_of(request)
    query = request.query_params
    model = find_model(service, query.get("model"))
    fmt = encoding.negotiate(
        format_from_query(query.get("format"), IMAGE_FORMATS), request.headers.get("accept"), IMAGE_FORMATS, "png"
    )
    settings = service.settings
    latents = await read_latents(request, model.latent_dim, settings.max_json_bytes, settings.max_sample_n)
    decoded = await service.engine.decode(model, latents)
    return image_response(
        model, fmt, decoded, lambda: encoding.images_json(model.name, model.latent_dim, latents, decoded.pixels)
    )


def document_limits(schema: dict, settings: Settings) -> None:
    """State the configured limits in the OpenAPI schema (they are settings, not constants)."""
    for parameter in schema["paths"]["/sample"]["post"].get("parameters", []):
        if parameter["name"] == "n":
            parameter["schema"]["maximum"] = settings.max_sample_n
    for media in schema["paths"]["/decode"]["post"]["requestBody"]["content"].values():
        latents = media["schema"].get("properties", {}).get("latents")
        if latents is not None:
            latents["maxItems"] = settings.max_sample_n
