"""Annotated dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from service.errors import ApiError
from service.registry import LoadedModel
from service.state import ServiceState


def get_service(request: Request) -> ServiceState:
    service: ServiceState = request.app.state.service
    if service.engine is None or service.registry is None:
        raise ApiError(503, "not_ready", "models are still loading; retry shortly")
    return service


ServiceDep = Annotated[ServiceState, Depends(get_service)]


def get_model(
    service: ServiceDep,
    model: Annotated[str | None, Query(description="Model name (GET /models); default: the configured default model")] = None,
) -> LoadedModel:
    found = service.registry.get(model)
    if found is None:
        raise ApiError(
            404,
            "model_not_found",
            f"unknown model {model!r}; available: {sorted(service.registry.models)}",
            {"available": sorted(service.registry.models)},
        )
    return found


ModelDep = Annotated[LoadedModel, Depends(get_model)]
AcceptHeader = Annotated[str | None, Header(include_in_schema=False)]
Seed = Annotated[int | None, Query(ge=0, le=2**63 - 1, description="Seed for numpy default_rng; same seed, same output")]
