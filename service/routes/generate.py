"""POST /sample and POST /decode: latents in, images out."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from service import encoding
from service.bodies import read_latents
from service.deps import AcceptHeader, ModelDep, Seed, ServiceDep, find_model, format_from_query, service_of
from service.errors import ApiError, error_responses
from service.inference import prior_latents
from service.routes.responses import image_response
from service.routes.schemas import IMAGE_CONTENT, LATENTS_BODY, ImagesJSON

router = APIRouter(tags=["generate"])

FormatQuery = Annotated[
    Literal["png", "json", "npy"] | None,
    Query(description="Output format; default: from the Accept header, else png"),
]
IMAGE_FORMATS = ("png", "json", "npy")
IMAGE_RESPONSES = {200: {"content": IMAGE_CONTENT, "description": "PNG grid, JSON or float32 .npy [N, 1, 28, 28]"}}


@router.post(
    "/sample",
    response_model=ImagesJSON,
    responses={**IMAGE_RESPONSES, **error_responses(404, 422, 429, 503, 504)},
    summary="Decode n latents drawn from N(0, T^2 I)",
)
async def sample(
    service: ServiceDep,
    model: ModelDep,
    accept: AcceptHeader = None,
    n: Annotated[int, Query(ge=1, description="Number of images (1..VAE_MAX_SAMPLE_N)")] = 16,
    seed: Seed = None,
    temperature: Annotated[float, Query(gt=0, le=10, description="Standard deviation T of the prior")] = 1.0,
    format: FormatQuery = None,
) -> Response:
    limit = service.settings.max_sample_n
    if n > limit:
        raise ApiError(422, "invalid_request", f"query parameter 'n': {n} is too many; allowed 1..{limit}", {"max": limit})
    fmt = encoding.negotiate(format, accept, IMAGE_FORMATS, "png")
    latents = prior_latents(n, model.latent_dim, seed, temperature)
    decoded = await service.engine.decode(model, latents)
    return image_response(
        model, fmt, decoded, lambda: encoding.images_json(model.name, model.latent_dim, latents, decoded.pixels)
    )


DECODE_PARAMETERS = [
    {"name": "model", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Model name (GET /models); default: the configured default model"},
    {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": list(IMAGE_FORMATS)},
     "description": "Output format; default: from the Accept header, else png"},
]


@router.post(
    "/decode",
    response_model=ImagesJSON,
    responses={**IMAGE_RESPONSES, **error_responses(404, 413, 415, 422, 429, 503, 504)},
    openapi_extra={**LATENTS_BODY, "parameters": DECODE_PARAMETERS},
    summary="Decode the given latents ([N, D] JSON or .npy)",
)
async def decode(request: Request) -> Response:
    # The hot path for many tiny requests: its two query parameters are checked by hand (same
    # rules and error shape as FastAPI's), which saves ~100 us per request over per-parameter
    # validation; they are documented in OpenAPI through DECODE_PARAMETERS.
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
