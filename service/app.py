"""create_app(settings): the FastAPI application, its lifespan, routers, middleware and handlers."""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.config import Settings
from service.errors import install_error_handlers
from service.inference import Engine
from service.metrics import Metrics, MetricsMiddleware
from service.registry import Registry, load_registry
from service.routes import generate, images, models, ops
from service.state import ServiceState

logger = logging.getLogger("service.app")

GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (CPython default 700)

DESCRIPTION = """Serves VAE encoders and decoders exported to ONNX (see docs/api.md).
Every endpoint that runs a model takes an optional `model` query parameter."""


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    """Build the app. `registry`: models already loaded and verified (python -m service does this
    first, to refuse to start with a clean message); otherwise the lifespan loads them."""
    settings = settings or Settings()
    metrics = Metrics()
    service = ServiceState(settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loaded = registry or load_registry(settings)
        engine = Engine(loaded, settings)
        for (model, graph), batcher in engine.batchers.items():
            batcher.observer = metrics.graph_observer(model, graph, lambda b=batcher: b.queued_rows)
        if settings.intra_op_threads > 1:
            logger.warning(
                "intra_op_threads=%d: batched results may differ from unbatched ones in the last bit",
                settings.intra_op_threads,
            )
        engine.start()
        service.registry, service.engine = loaded, engine
        try:
            await asyncio.to_thread(engine.warm_up)
            # What is loaded by now lives as long as the process; frozen, the collector stops walking
            # it. Unfrozen, under load a full collection ran about twice a second and paused the event
            # loop up to ~30 ms (/decode p99 at 32 connections 3.4x p50, 1.2x frozen; bench/README.md).
            gc.collect()
            gc.freeze()
            # Each request allocates a few hundred short-lived objects; at the default 700 a young
            # collection ran every couple of requests. 20,000 cut /decode's event-loop CPU ~10%.
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            service.ready = True
            logger.info("ready: models %s, default %s", sorted(loaded.models), loaded.default)
            yield
        finally:
            # Uvicorn has already waited for in-flight requests; finish anything still queued.
            service.shutting_down, service.ready = True, False
            await asyncio.to_thread(engine.stop, settings.shutdown_timeout_s)
            service.image_executor.shutdown(wait=True)
            logger.info("stopped: queues drained")

    app = FastAPI(
        title="VAE serving",
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        # Metrics are Prometheus (GET /metrics); FastAPI's OpenTelemetry hooks cost ~5% per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for module in (generate, images, models, ops):
        app.include_router(module.router)

    def openapi_with_limits() -> dict:
        """The schema, with the limits this instance was configured with (VAE_MAX_*)."""
        if app.openapi_schema is None:
            # A copy: route-level openapi_extra dicts are shared by every app built in this process.
            schema = copy.deepcopy(FastAPI.openapi(app))
            generate.document_limits(schema, settings)
            images.document_limits(schema, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi_with_limits  # type: ignore[method-assign]
    return app
