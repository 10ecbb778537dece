"""Lookups shared by the routers: the service state, a model by name, /decode's format check.
ServiceDep is async: FastAPI runs plain `def` dependencies in a thread pool, which costs more than
they do. Query parameters of the inference routes are parsed by service/query.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.errors import ApiError
from service.query import Q, parse_query
from service.registry import LoadedModel
from service.state import ServiceState


def service_of(request: Request) -> ServiceState:
    service: ServiceState = request.app.state.service
    if service.engine is None or service.registry is None:
        raise ApiError(503, "not_ready", "models are still loading; retry shortly")
    return service


def find_model(service: ServiceState, name: str | None) -> LoadedModel:
    found = service.registry.get(name)
    if found is None:
        available = sorted(service.registry.models)
        raise ApiError(404, "model_not_found", f"unknown model {name!r}; available: {available}", {"available": available})
    return found


def resolve(request: Request, query_model: type[Q]) -> tuple[Q, ServiceState, LoadedModel]:
    """The route's validated query, the service and the requested model (422, 503, 404 in that order)."""
    query = parse_query(query_model, request)
    service = service_of(request)
    return query, service, find_model(service, query.model)


def format_from_query(value: str | None, allowed: tuple[str, ...]) -> str | None:
    """The `format` query parameter, checked by hand (see routes/generate.py: decode)."""
    if value is None or value in allowed:
        return value
    choices = ", ".join(repr(choice) for choice in allowed)
    raise ApiError(
        422,
        "invalid_request",
        f"query parameter 'format': Input should be {choices}",
        {"errors": [{"loc": ["query", "format"], "msg": f"Input should be {choices}", "input": value}]},
    )


async def get_service(request: Request) -> ServiceState:
    return service_of(request)


ServiceDep = Annotated[ServiceState, Depends(get_service)]
