"""Operations: liveness, readiness, metrics, and /ping (the HTTP ceiling for benchmarks)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse

from service import errors
from service.deps import reject_unknown_query
from service.handlers import error_responses
from service.metrics import CONTENT_TYPE_LATEST
from service.routes.schemas import Health, Ready
from service.routing import LeanRoute
from service.state import ServiceState

router = APIRouter(tags=["operations"], dependencies=[Depends(reject_unknown_query)], route_class=LeanRoute)


@router.get("/health", response_model=Health, summary="Liveness: 200 while the process runs")
async def health() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/ping", response_class=PlainTextResponse, summary="Trivial endpoint: the HTTP ceiling for benchmarks")
async def ping() -> Response:
    return Response(b"pong", media_type="text/plain")


@router.get(
    "/ready",
    response_model=Ready,
    responses=error_responses(errors.NotReady, errors.ShuttingDown),
    summary="Readiness: models loaded and warmed up",
)
async def ready(request: Request) -> Ready:
    service: ServiceState = request.app.service
    if service.shutting_down:
        raise errors.ShuttingDown("the service is shutting down; finishing queued work")
    if not service.ready or service.registry is None:
        raise errors.NotReady("models are loading or warming up; retry shortly")
    return Ready(status="ready", models=sorted(service.registry.models))


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    service: ServiceState = request.app.service
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
