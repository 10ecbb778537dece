"""create_app(settings): the FastAPI application, its lifespan, routers, middleware and handlers."""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from service import playground
from service.auth import ApiKeyMiddleware, KeyRing, load_keys
from service.config import Settings
from service.dataplane import DataPlane, lean_routes
from service.handlers import install_error_handlers
from service.inference import Engine
from service.metrics import Metrics, MetricsMiddleware
from service.oip import rest as oip_rest
from service.oip.repository import ModelRepository
from service.registry import Registry, load_registry
from service.request_ids import RequestIdMiddleware
from service.routes import generate, images, latent_space, models, ops, scoring
from service.state import ServiceState

logger = logging.getLogger("service.app")

# The data plane's routes (service/dataplane.py): those whose per-request cost was mostly framework.
DATA_PLANE_PATHS = (
    "/sample",
    "/decode",
    "/encode",
    "/reconstruct",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
)

DESCRIPTION = """Serves VAE encoders and decoders exported to ONNX (see docs/api.md).
Every endpoint that runs a model takes an optional `model` query parameter."""


def document_limits(schema: dict[str, Any], settings: Settings) -> None:
    """State this instance's configured limits (VAE_MAX_*) in its OpenAPI schema: the one place
    where settings reach the schema, since the query and body models are shared by every app."""
    paths = schema["paths"]
    for parameter in paths["/sample"]["post"]["parameters"]:
        if parameter["name"] == "n":
            parameter["schema"]["maximum"] = settings.max_sample_n
    decode_json = paths["/decode"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    decode_json["properties"]["latents"]["maxItems"] = settings.max_sample_n
    for parameter in paths["/score"]["post"]["parameters"]:
        if parameter["name"] == "k":
            parameter["schema"]["maximum"] = settings.max_score_k
    for path in ("/encode", "/reconstruct", "/score"):
        form = paths[path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        form["properties"]["file"]["maxItems"] = settings.max_upload_images


class ServiceApp(FastAPI):
    """FastAPI whose middleware stack starts with the data plane: DATA_PLANE_PATHS go through the
    service's middlewares to their handlers, everything else through FastAPI's whole stack."""

    data_plane: DataPlane
    # Also app.state.service; routes read this one, since Starlette's State finds its attributes
    # only after a failed lookup, which costs more than most of a dependency.
    service: ServiceState
    data_plane_paths: tuple[str, ...] = DATA_PLANE_PATHS  # () serves every route through FastAPI (tests compare)

    def build_middleware_stack(self) -> ASGIApp:
        routes = [r for r in lean_routes(self.routes) if r.path in self.data_plane_paths]
        self.data_plane = DataPlane(
            super().build_middleware_stack(), routes, self.user_middleware, self.exception_handlers
        )
        return self.data_plane


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> ServiceApp:
    """Build the app. `registry`: models already loaded and verified (python -m service does this
    first, to refuse to start with a clean message); otherwise the lifespan loads them."""
    settings = settings or Settings()
    metrics = Metrics()
    service = ServiceState(settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loaded = registry or load_registry(settings)
        engine = Engine(loaded, settings, lambda model, graph, b: metrics.graph_observer(model, graph, b.queue_depth))
        if settings.intra_op_threads > 1:
            logger.warning(
                "intra_op_threads=%d: batched results may differ from unbatched ones in the last bit",
                settings.intra_op_threads,
            )
        engine.start()
        service.registry, service.engine = loaded, engine
        service.repository = ModelRepository(engine)
        grpc_server = None
        try:
            await asyncio.to_thread(engine.warm_up)
            if settings.grpc_port is not None:
                from service.oip.grpc_server import start_grpc  # imports grpc and the stubs only when asked

                grpc_server = await start_grpc(service, settings.host, settings.grpc_port)
            # What is loaded by now lives as long as the process; frozen, the collector stops
            # walking it, which removes the long full-collection pauses under load.
            gc.collect()
            gc.freeze()
            # Each request allocates a few hundred short-lived objects; at CPython's default a
            # young collection would run every couple of requests.
            gc.set_threshold(settings.gc_young_threshold, *gc.get_threshold()[1:])
            service.ready = True
            logger.info("ready: models %s, default %s", sorted(loaded.models), loaded.default)
            yield
        finally:
            # Uvicorn has already waited for in-flight requests; finish anything still queued.
            service.shutting_down, service.ready = True, False
            if grpc_server is not None:
                await grpc_server.stop(settings.shutdown_timeout_s)
            await asyncio.to_thread(engine.stop, settings.shutdown_timeout_s)
            service.image_executor.shutdown(wait=True)
            logger.info("stopped: queues drained")

    app = ServiceApp(
        title="VAE serving",
        description=DESCRIPTION,
        version="1.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        # Metrics are Prometheus (GET /metrics); FastAPI's OpenTelemetry hooks cost per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = app.service = service
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.api_keys is not None:
        service.keyring = KeyRing(load_keys(settings.api_keys), settings.api_keys_protect_ops)
        app.add_middleware(ApiKeyMiddleware, keyring=service.keyring)
    app.add_middleware(RequestIdMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["X-Model", "X-Latent-Dim", "X-Latent-Shape", "X-Request-ID", "Retry-After"],
        )
    for router in (
        generate.router,
        images.router,
        latent_space.router,
        scoring.router,
        models.router,
        ops.router,
        oip_rest.router,
    ):
        app.include_router(router)
    if settings.playground:
        app.include_router(playground.router)

    def openapi_with_limits() -> dict[str, Any]:
        if app.openapi_schema is None:
            # A copy: route-level openapi_extra dicts are shared by every app built in this process.
            schema = copy.deepcopy(FastAPI.openapi(app))
            document_limits(schema, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi_with_limits  # type: ignore[method-assign]
    return app
