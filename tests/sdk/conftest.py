"""Fixtures for the SDK tests.

`live_server` (the shared service on the shipped models) comes from tests/conftest.py.
`small_queue_server` is a second service with a tiny batch queue and a queue delay, so that
429s, batching and client timeouts happen on purpose rather than by load. `colour_server`
serves a tiny RGB model with a spatial latent (COLOUR_MODEL), packaged by the real
`python -m service package`, so that nothing in the SDK can assume 28x28, one channel or a
flat latent.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from devtools.images import digit_png_bytes
from devtools.live import REPO_ROOT, ServerProcess, start_server
from devtools.tiny_models import TinyVAE

#: The colour model's graphs: RGB 12x16 images (not square), a [2, 3, 4] latent.
COLOUR_MODEL = TinyVAE(image_shape=(3, 12, 16), latent_shape=(2, 3, 4))
COLOUR_LABELS = ("cat", "dog")

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


@pytest.fixture(scope="session")
def colour_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real service with one model, "rgb" (COLOUR_MODEL), as its default."""
    folder = tmp_path_factory.mktemp("colour")
    encoder, decoder = COLOUR_MODEL.write(folder / "graphs")
    models = folder / "models"
    command = [sys.executable, "-m", "service", "package", "--encoder", str(encoder), "--decoder", str(decoder)]
    command += ["--name", "rgb", "--labels", ",".join(COLOUR_LABELS), "--out", str(models / "rgb")]
    packaged = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert packaged.returncode == 0, packaged.stderr
    server = start_server({"VAE_DEFAULT_MODEL": "rgb"}, models)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def colour_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30x40 RGB photo-like PNG on disk (another size than the model's: the service fits it)."""
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    path = tmp_path_factory.mktemp("images") / "photo.png"
    path.write_bytes(buffer.getvalue())
    return path
