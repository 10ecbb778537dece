"""Fixtures shared by every test folder: the app in-process (route and schema tests), a live
service process (end-to-end, lifecycle) and a factory for live ones with custom settings."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from devtools.live import ServerProcess, start_server
from service.app import create_app
from service.config import Settings


@pytest.fixture(scope="session")
def app_client():
    """`TestClient(create_app(Settings()))` on the repository's models, lifespan run (models loaded
    and warmed up): the routes in-process, without a socket."""
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def live_server():
    """`python -m service` on 127.0.0.1:<free port> with the repository's models/, ready.
    Yields a ServerProcess (.base_url, .process, .client())."""
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def server_factory():
    """Start services with custom VAE_* settings: `server_factory({"VAE_MAX_SAMPLE_N": "8"})`.
    Every server started here is stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, model_dir=None) -> ServerProcess:
        server = start_server(env, model_dir)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
