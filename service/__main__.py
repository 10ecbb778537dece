"""`python -m service`: verify the models, then serve them with uvicorn (one worker).

On SIGTERM uvicorn stops accepting connections and waits for in-flight requests (up to
VAE_SHUTDOWN_TIMEOUT_S); the lifespan then drains the batch queues before the process exits.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.config import Settings
from service.registry import ModelLoadError, load_registry
from service.state import ServiceState


class DrainingServer(uvicorn.Server):
    """Marks the service as shutting down (GET /ready: 503) the moment a signal arrives."""

    def __init__(self, config: uvicorn.Config, service: ServiceState) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig, frame) -> None:
        self.service.shutting_down = True
        super().handle_exit(sig, frame)


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"VAE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"vae-service: invalid configuration: {problems}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        registry = load_registry(settings)
    except ModelLoadError as exc:
        print(f"vae-service: refusing to start: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, registry=registry)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        lifespan="on",
    )
    server = DrainingServer(config, app.state.service)
    server.run()
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
