"""Fixtures shared by every test folder: a live service process and a factory for custom ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `import service`, `tests.helpers`

from tests.helpers import ServerProcess, start_server  # noqa: E402


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
