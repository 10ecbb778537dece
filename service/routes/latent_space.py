"""POST /interpolate and POST /traverse: walks through latent space, decoded through the
decoder's batcher like /decode (so bounded by the same queue) and answered in its formats."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response

from service import errors, outputs
from service.deps import AcceptHeader, EngineDep, ModelDep, ServiceDep, reject_unknown_query
from service.handlers import error_responses
from service.inference import (
    Engine,
    draw_latents,
    interpolation,
    most_active,
    sensitivity_probe,
    traversal,
)
from service.inputs import InterpolateQuery, TraverseQuery, check_sample_n, check_steps, parse_seeds, read_endpoints
from service.registry import LoadedModel
from service.routes.images import TAKES_UPLOADS
from service.routes.schemas import IMAGE_RESPONSES, UPLOAD_CONTENT
from service.routing import LeanRoute
from service.state import ServiceState

router = APIRouter(tags=["latent space"], dependencies=[Depends(reject_unknown_query)], route_class=LeanRoute)

WALK_ERRORS = error_responses(*TAKES_UPLOADS)
WALK_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            **UPLOAD_CONTENT,
            "application/json": {"schema": {"type": "object", "properties": {"latents": {"type": "array"}}}},
        },
    }
}


def seed_latent(model: LoadedModel, seed: int, temperature: float) -> np.ndarray:
    """The latent /sample?n=1&seed=S&temperature=T decodes (from the model's default prior)."""
    return draw_latents(model, 1, seed, temperature, model.card.prior.default)[0]


async def encoded_mu(service: ServiceState, engine: Engine, model: LoadedModel, uploads, normalize: bool) -> np.ndarray:
    images = await service.preprocess(uploads, model, normalize)
    return (await engine.encode(model, images)).mu


@router.post(
    "/interpolate",
    responses={**IMAGE_RESPONSES, **WALK_ERRORS},
    openapi_extra=WALK_BODY,
    summary="Decode a walk between two endpoints: two uploads (their mu), two latents, or two seeds",
)
async def interpolate(
    query: Annotated[InterpolateQuery, Query()],
    request: Request,
    model: ModelDep,
    engine: EngineDep,
    service: ServiceDep,
    accept: AcceptHeader = None,
) -> Response:
    steps = check_steps("steps", query.steps, min(service.settings.max_walk_steps, model.limits.max_sample_n))
    fmt = outputs.negotiate(query.format, accept, outputs.ANIMATION_FORMATS, "png")
    settings = service.settings
    given = await read_endpoints(
        request, query.seeds, model.latent_shape, settings.max_upload_bytes, 2, model.accepts_flat_latents
    )
    if given is None:
        if query.seeds is None:
            raise errors.InvalidRequest("no endpoints: send two images, or JSON {'latents': [a, b]}, or ?seeds=A,B")
        a, b = (seed_latent(model, seed, query.temperature) for seed in parse_seeds(query.seeds))
        kind = "seeds"
    elif given.uploads is not None:
        a, b = await encoded_mu(service, engine, model, given.uploads, query.normalize)
        kind = "images"
    else:
        assert given.latents is not None
        a, b = given.latents
        kind = "latents"
    frames = interpolation(a, b, steps, query.method)
    decoded = await engine.decode(model, frames, outputs.shows_images(fmt))
    return outputs.walk_response(model, fmt, decoded, frames, {"endpoints": kind, "method": query.method})


@router.post(
    "/traverse",
    responses={**IMAGE_RESPONSES, **WALK_ERRORS},
    openapi_extra={"requestBody": {"required": False, "content": UPLOAD_CONTENT}},
    summary="Sweep latent dimensions one at a time from an upload's mu, a seed's latent, or the origin",
)
async def traverse(
    query: Annotated[TraverseQuery, Query()],
    request: Request,
    model: ModelDep,
    engine: EngineDep,
    service: ServiceDep,
    accept: AcceptHeader = None,
) -> Response:
    steps = check_steps("steps", query.steps, service.settings.max_walk_steps)
    fmt = outputs.negotiate(query.format, accept, outputs.IMAGE_FORMATS, "png")
    seeds = None if query.seed is None else f"{query.seed},{query.seed}"
    given = await read_endpoints(
        request, seeds, model.latent_shape, service.settings.max_upload_bytes, 1, model.accepts_flat_latents
    )
    if given is not None and given.uploads is not None:
        origin = (await encoded_mu(service, engine, model, given.uploads, query.normalize))[0]
    elif given is not None and given.latents is not None:
        origin = given.latents[0]
    elif query.seed is not None:
        origin = seed_latent(model, query.seed, 1.0)
    else:
        origin = np.zeros(model.latent_shape, dtype=np.float32)
    size = model.latent_dim
    if query.dims is not None:
        dims = [int(dim) for dim in query.dims.split(",")]
        if max(dims) >= size:
            raise errors.InvalidRequest(f"query parameter 'dims': {max(dims)} is out of range; allowed 0..{size - 1}")
    else:
        probe = await engine.decode(model, sensitivity_probe(origin, query.span), pixels=False)
        dims = most_active(probe.images, min(query.count, size))
    check_sample_n(len(dims) * steps, model.limits.max_sample_n)
    latents, values = traversal(origin, dims, steps, query.span)
    decoded = await engine.decode(model, latents, outputs.shows_images(fmt))
    return outputs.traversal_response(model, fmt, decoded, latents, dims, values)
