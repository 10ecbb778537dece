"""POST /sample and POST /decode: latents in, images out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from service import errors, outputs
from service.deps import AcceptHeader, EngineDep, LatentsDep, ModelDep, ServiceDep, reject_unknown_query
from service.handlers import error_responses
from service.inference import choose_prior, draw_latents
from service.inputs import DecodeQuery, SampleQuery, check_sample_n
from service.routes.schemas import IMAGE_RESPONSES, LATENTS_BODY, ImagesJSON
from service.routing import LeanRoute

router = APIRouter(tags=["generate"], dependencies=[Depends(reject_unknown_query)], route_class=LeanRoute)

RUNS_A_MODEL = (errors.ModelNotFound, errors.InvalidRequest, errors.QueueFull, errors.NotReady, errors.InferenceTimeout)


@router.post(
    "/sample",
    response_model=ImagesJSON,
    responses={**IMAGE_RESPONSES, **error_responses(*RUNS_A_MODEL)},
    summary="Decode n latents drawn from the prior: N(0, T^2 I), the stored mixture, or one class's",
)
async def sample(
    query: Annotated[SampleQuery, Query()],
    model: ModelDep,
    engine: EngineDep,
    service: ServiceDep,
    accept: AcceptHeader = None,
) -> Response:
    n = check_sample_n(query.n, model.limits.max_sample_n)
    fmt = outputs.negotiate(query.format, accept, outputs.IMAGE_FORMATS, "png")
    kind, label = choose_prior(model, query.prior, query.label)
    latents = draw_latents(model, n, query.seed, query.temperature, kind, label)
    decoded = await engine.decode(model, latents, outputs.shows_images(fmt))
    return outputs.images_response(model, fmt, decoded, latents)


@router.post(
    "/decode",
    response_model=ImagesJSON,
    responses={
        **IMAGE_RESPONSES,
        **error_responses(*RUNS_A_MODEL, errors.PayloadTooLarge, errors.UnsupportedMediaType),
    },
    openapi_extra=LATENTS_BODY,
    summary="Decode the given latents ([N, *latent_shape] as JSON or .npy)",
)
async def decode(
    query: Annotated[DecodeQuery, Query()],
    model: ModelDep,
    latents: LatentsDep,
    engine: EngineDep,
    service: ServiceDep,
    accept: AcceptHeader = None,
) -> Response:
    fmt = outputs.negotiate(query.format, accept, outputs.IMAGE_FORMATS, "png")
    decoded = await engine.decode(model, latents, outputs.shows_images(fmt))
    return outputs.images_response(model, fmt, decoded, latents)
