"""Shared test helpers: real digit image bytes, and a real `python -m service` process.

Used by tests/service, tests/sdk and the benchmarks. Digits come from data/mnist.npz (the MNIST
test set) when present, else are drawn with Pillow, so the helpers work on a fresh clone.
"""

from __future__ import annotations

import functools
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
# TESTS_MNIST_NPZ=/nonexistent runs the suite on drawn digits, as on a clone without data/.
MNIST_NPZ = Path(os.environ.get("TESTS_MNIST_NPZ", REPO_ROOT / "data" / "mnist.npz"))


# --- images -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _mnist_test_images() -> np.ndarray | None:
    if not MNIST_NPZ.exists():
        return None
    try:
        with np.load(MNIST_NPZ) as archive:
            return archive["test_images"][:1000].copy()
    except Exception:
        return None


@functools.lru_cache(maxsize=64)
def _drawn_digit(index: int) -> np.ndarray:
    """A white-on-black digit drawn with Pillow's default font, MNIST-like: fit in 20x20, centred by mass."""
    canvas = Image.new("L", (64, 64), 0)
    font = ImageFont.load_default(size=56)
    ImageDraw.Draw(canvas).text((32, 32), str(index % 10), fill=255, font=font, anchor="mm", stroke_width=3, stroke_fill=255)
    box = canvas.getbbox()
    glyph = canvas.crop(box)
    scale = 20 / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))), Image.Resampling.LANCZOS)
    pixels = np.asarray(glyph, dtype=np.float64)
    mass = pixels.sum()
    cy = (pixels.sum(axis=1) * np.arange(glyph.height)).sum() / mass
    cx = (pixels.sum(axis=0) * np.arange(glyph.width)).sum() / mass
    digit = Image.new("L", (28, 28), 0)
    digit.paste(glyph, (round(14 - cx), round(14 - cy)))  # centre of mass on (14, 14), as MNIST
    return np.asarray(digit, dtype=np.uint8)


def digit_array(index: int = 0) -> np.ndarray:
    """A 28x28 uint8 digit, white on black: MNIST test image `index` if available, else drawn."""
    images = _mnist_test_images()
    if images is not None:
        return images[index % len(images)]
    return _drawn_digit(index)


def image_bytes(pixels: np.ndarray, fmt: str = "PNG", **save_options) -> bytes:
    """Encode a uint8 array ([H, W] gray or [H, W, 3|4]) with Pillow in `fmt`."""
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    if fmt.upper() in ("JPEG", "JPG") and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def digit_png_bytes(index: int = 0, fmt: str = "PNG", size: int | None = None, white_background: bool = False) -> bytes:
    """Real digit image bytes: PNG (or JPEG, BMP, GIF, WEBP), optionally upscaled to size x size and
    drawn as ink on white paper."""
    pixels = digit_array(index)
    if white_background:
        pixels = 255 - pixels
    if size is not None and size != 28:
        pixels = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC))
    options = {"quality": 95} if fmt.upper() in ("JPEG", "WEBP") else {}
    return image_bytes(pixels, fmt, **options)


MEDIA_TYPE = {"PNG": "image/png", "JPEG": "image/jpeg", "BMP": "image/bmp", "GIF": "image/gif", "WEBP": "image/webp"}


# --- a real service process ----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen
    base_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=kwargs.pop("timeout", 30.0), **kwargs)

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def launch_server(
    env: dict[str, str] | None = None, model_dir: Path | str | None = None, repo: Path | None = None
) -> ServerProcess:
    """Start `python -m service` on 127.0.0.1 and a free port; does not wait. `repo`: the checkout
    whose service/ runs (default this one; bench/ab.py passes another revision's worktree)."""
    port = free_port()
    overrides = {
        "VAE_HOST": "127.0.0.1",
        "VAE_PORT": str(port),
        "VAE_MODEL_DIR": str(model_dir or MODELS_DIR),
        "VAE_LOG_LEVEL": "warning",
        **(env or {}),
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VAE_")}
    full_env.update(overrides)
    log_file = tempfile.NamedTemporaryFile(prefix="vae-service-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=repo or REPO_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
    )
    log_file.close()
    return ServerProcess(process, f"http://127.0.0.1:{port}", Path(log_file.name), overrides)


def wait_ready(server: ServerProcess, timeout: float = 60.0) -> ServerProcess:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"service exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/ready", timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"service not ready within {timeout} s:\n{server.log()}")


def start_server(env: dict[str, str] | None = None, model_dir: Path | str | None = None, timeout: float = 60.0) -> ServerProcess:
    """Start the service and wait for GET /ready; the caller stops it (server.stop())."""
    return wait_ready(launch_server(env, model_dir), timeout)


def run_until_exit(env: dict[str, str] | None = None, model_dir: Path | str | None = None, timeout: float = 60.0) -> tuple[int, str]:
    """Start the service expecting it to refuse to start; returns (exit code, output)."""
    server = launch_server(env, model_dir)
    try:
        code = server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.stop()
        raise AssertionError(f"service did not exit within {timeout} s:\n{server.log()}") from None
    return code, server.log()
