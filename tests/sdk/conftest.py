"""Fixtures for the SDK tests.

`live_server` (the shared service on the shipped models) comes from tests/conftest.py.
`small_queue_server` is a second service with a tiny batch queue and a queue delay, so that
429s, batching and client timeouts happen on purpose rather than by load.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.images import digit_png_bytes
from devtools.live import ServerProcess, start_server

# before they run: another request in that window gets 429, and small ones share one batch.
SMALL_QUEUE_ROWS = 16
QUEUE_DELAY_MS = 800


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes tens of seconds (builds a virtual environment); runs in CI")


@pytest.fixture(scope="session")
def small_queue_server() -> Iterator[ServerProcess]:
    server = start_server(
        {
            "VAE_MAX_QUEUE_ROWS": str(SMALL_QUEUE_ROWS),
            "VAE_MAX_SAMPLE_N": str(SMALL_QUEUE_ROWS),
            "VAE_MAX_UPLOAD_IMAGES": str(SMALL_QUEUE_ROWS),
            "VAE_MAX_QUEUE_DELAY_MS": str(QUEUE_DELAY_MS),
        }
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def digit_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 28x28 digit as a PNG file on disk, like a user's file."""
    path = tmp_path_factory.mktemp("images") / "digit.png"
    path.write_bytes(digit_png_bytes(0))
    return path
