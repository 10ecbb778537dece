"""POST /encode and POST /reconstruct: uploaded images in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from service import errors, outputs
from service.deps import AcceptHeader, EngineDep, ModelDep, ServiceDep, UploadsDep, reject_unknown_query
from service.handlers import error_responses
from service.inference import posterior_sample, reconstruction_errors
from service.inputs import EncodeQuery, ReconstructQuery
from service.routes.schemas import IMAGE_RESPONSES, NPY_CONTENT, UPLOAD_BODY, EncodeJSON, ReconstructJSON
from service.routing import LeanRoute

router = APIRouter(tags=["images"], dependencies=[Depends(reject_unknown_query)], route_class=LeanRoute)

TAKES_UPLOADS = (
    errors.ModelNotFound,
    errors.InvalidRequest,
    errors.PayloadTooLarge,
    errors.UnsupportedMediaType,
    errors.QueueFull,
    errors.NotReady,
    errors.InferenceTimeout,
)


@router.post(
    "/encode",
    response_model=EncodeJSON,
    responses={200: {"content": NPY_CONTENT}, **error_responses(*TAKES_UPLOADS)},
    openapi_extra=UPLOAD_BODY,
    summary="Encode uploaded images to mu and logvar (and a sampled z on request)",
)
async def encode(
    query: Annotated[EncodeQuery, Query()],
    model: ModelDep,
    uploads: UploadsDep,
    engine: EngineDep,
    service: ServiceDep,
    accept: AcceptHeader = None,
) -> Response:
    fmt = outputs.negotiate(query.format, accept, outputs.LATENT_FORMATS, "json")
    images = await service.preprocess(uploads, model, query.normalize)
    encoded = await engine.encode(model, images)
    z = posterior_sample(encoded, query.seed) if query.sample else None
    return outputs.encoded_response(model, fmt, [upload.filename for upload in uploads], encoded, z)


@router.post(
    "/reconstruct",
    response_model=ReconstructJSON,
    responses={**IMAGE_RESPONSES, **error_responses(*TAKES_UPLOADS)},
    openapi_extra=UPLOAD_BODY,
    summary="Encode then decode uploaded images (mu by default, a sample on request)",
)
async def reconstruct(
    query: Annotated[ReconstructQuery, Query()],
    model: ModelDep,
    uploads: UploadsDep,
    engine: EngineDep,
    service: ServiceDep,
    accept: AcceptHeader = None,
) -> Response:
    fmt = outputs.negotiate(query.format, accept, outputs.IMAGE_FORMATS, "png")
    inputs = await service.preprocess(uploads, model, query.normalize)
    encoded = await engine.encode(model, inputs)
    latents = posterior_sample(encoded, query.seed) if query.sample else encoded.mu
    decoded = await engine.decode(model, latents, outputs.shows_images(fmt))
    if fmt != "json":
        return outputs.images_response(model, fmt, decoded, latents)
    mse = reconstruction_errors(inputs, decoded.images)
    filenames = [upload.filename for upload in uploads]
    return outputs.reconstructed_json(model, filenames, inputs, latents, decoded, mse)
