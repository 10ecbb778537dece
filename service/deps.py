"""What the routes take, as `Annotated` dependencies: the service state, the requested model, the
Accept header and the request bodies; plus the check, on every route, that each query parameter
is one the route knows. Async throughout: FastAPI runs plain `def` dependencies in a thread pool,
which costs more than they do."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Header, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from service.errors import InvalidRequest, NotReady
from service.inference import Engine
from service.inputs import ModelName, Upload, json_rows_at_least, read_latents, read_uploads
from service.registry import LoadedModel
from service.routing import SEEN_LIMIT
from service.state import ServiceState


async def get_service(request: Request) -> ServiceState:
    service: ServiceState = request.app.service
    if service.engine is None or service.registry is None:
        raise NotReady("models are still loading; retry shortly")
    return service


ServiceDep = Annotated[ServiceState, Depends(get_service)]


async def get_engine(service: ServiceDep) -> Engine:
    assert service.engine is not None  # get_service answered 503 otherwise
    return service.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


async def get_model(service: ServiceDep, model: Annotated[ModelName, Query()] = None) -> LoadedModel:
    assert service.registry is not None
    return service.registry.find(model)


ModelDep = Annotated[LoadedModel, Depends(get_model)]
AcceptHeader = Annotated[str | None, Header(description="Output format when `format` is not given")]


async def get_uploads(request: Request, service: ServiceDep, model: ModelDep) -> list[Upload]:
    settings = service.settings
    # A full queue refuses before the body is parsed: under overload, refusals stay cheap.
    assert service.engine is not None  # get_service answered 503 otherwise
    service.engine.refuse_if_full(model, "encoder")
    return await read_uploads(request, settings.max_upload_bytes, model.limits.max_upload_images)


UploadsDep = Annotated[list[Upload], Depends(get_uploads)]


def admit_latents(engine: Engine, model: LoadedModel, body: bytes, media_type: str) -> None:
    """Between reading a latents body and parsing it: QueueFull for a JSON body the decoder's queue
    could not take, judged from its brackets, and only while some allowed request could be refused.
    Under overload a many-row refusal then costs a scan of its bytes, not its parse."""
    if media_type == "application/json" and engine.could_refuse(model, "decoder", model.limits.max_sample_n):
        engine.refuse_if_full(model, "decoder", json_rows_at_least(body, model.latent_shape))


async def get_latents(request: Request, service: ServiceDep, model: ModelDep) -> np.ndarray:
    settings = service.settings
    assert service.engine is not None
    service.engine.refuse_if_full(model, "decoder")  # as get_uploads: refuse before parsing
    return await read_latents(
        request,
        model.latent_shape,
        settings.max_json_bytes,
        model.limits.max_sample_n,
        model.accepts_flat_latents,
        partial(admit_latents, service.engine, model),
    )


LatentsDep = Annotated[np.ndarray, Depends(get_latents)]


def query_names(dependant: Dependant) -> frozenset[str]:
    """Every query parameter a route declares, its own and its dependencies', models flattened."""
    names: set[str] = set()
    for field in dependant.query_params:
        annotation: Any = field.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.update(info.alias or name for name, info in annotation.model_fields.items())
        else:
            names.add(field.alias)
    for sub in dependant.dependencies:
        names |= query_names(sub)
    return frozenset(names)


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take: a misspelt `temprature` would otherwise
    be ignored and the caller would get an answer they did not ask for."""
    query = request.scope.get("query_string")
    if not query:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed: frozenset[str] | None = getattr(route, "query_names", None)
    if allowed is None:
        allowed = query_names(route.dependant)
        route.query_names = allowed  # type: ignore[attr-defined]  # computed once per route
        route.query_verdicts = {}  # type: ignore[attr-defined]  # query string -> its unknown names
    verdicts: dict[bytes, list[str]] = route.query_verdicts  # type: ignore[attr-defined]
    unknown = verdicts.get(query)
    if unknown is None:
        unknown = [name for name in request.query_params if name not in allowed]
        if len(verdicts) >= SEEN_LIMIT:
            verdicts.clear()  # bounded, as the validated query strings are
        verdicts[query] = unknown
    if unknown:
        listed = ", ".join(sorted(allowed)) or "none"
        raise InvalidRequest(
            f"unknown query parameter {unknown[0]!r} on {route.path}; allowed: {listed}",
            {"unknown": unknown, "allowed": sorted(allowed)},
        )
