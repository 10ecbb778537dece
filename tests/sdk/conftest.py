"""Fixtures for the SDK tests.

`live_server` (the shared service on the shipped models) comes from tests/conftest.py.
`small_queue_server` is a second, private service started here with a tiny batch queue and a
queue delay, so that 429s, batching and client timeouts happen on purpose, not by load.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vae_client import Client, VAEError

REPO_ROOT = Path(__file__).resolve().parents[2]

# One request of SMALL_QUEUE_ROWS rows fills the queue, and it waits QUEUE_DELAY_MS for more rows
# before running: a second request in that window gets 429, and concurrent small ones share a batch.
SMALL_QUEUE_ROWS = 16
QUEUE_DELAY_MS = 400


@dataclass(frozen=True)
class ServiceProcess:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(settings: dict[str, str], log_path: Path, ready_timeout_s: float = 120.0) -> ServiceProcess:
    """`python -m service` on 127.0.0.1 with VAE_* overrides; returns once /ready says ready."""
    port = _free_port()
    env = {**os.environ, "VAE_HOST": "127.0.0.1", "VAE_PORT": str(port), "VAE_LOG_LEVEL": "warning", **settings}
    env.pop("VAE_URL", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    service = ServiceProcess(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + ready_timeout_s
    with Client(service.base_url, timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"service exited with {process.returncode}:\n{service.log()}")
            try:
                client.wait_until_ready(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                return service
            except VAEError:
                if time.monotonic() > deadline:
                    stop_service(service)
                    raise


def stop_service(service: ServiceProcess) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()


@pytest.fixture(scope="session")
def small_queue_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    settings = {
        "VAE_MAX_QUEUE_ROWS": str(SMALL_QUEUE_ROWS),
        "VAE_MAX_SAMPLE_N": str(SMALL_QUEUE_ROWS),
        "VAE_MAX_UPLOAD_IMAGES": str(SMALL_QUEUE_ROWS),
        "VAE_MAX_QUEUE_DELAY_MS": str(QUEUE_DELAY_MS),
    }
    service = start_service(settings, tmp_path_factory.mktemp("small-queue") / "service.log")
    yield service
    stop_service(service)


@pytest.fixture(scope="session")
def digit_png(live_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 28x28 PNG of a sampled digit, written to disk like a user's file."""
    path = tmp_path_factory.mktemp("images") / "digit.png"
    with Client(live_server.base_url) as client:
        client.sample(1, seed=7).save_grid(path)
    return path
