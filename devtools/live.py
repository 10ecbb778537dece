"""A real `python -m service` process on 127.0.0.1 and a free port, for tests and benchmarks."""

from __future__ import annotations

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

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"


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
        [sys.executable, "-m", "service"],
        cwd=repo or REPO_ROOT,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
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


def start_server(
    env: dict[str, str] | None = None, model_dir: Path | str | None = None, timeout: float = 60.0
) -> ServerProcess:
    """Start the service and wait for GET /ready; the caller stops it (server.stop())."""
    return wait_ready(launch_server(env, model_dir), timeout)


def run_until_exit(
    env: dict[str, str] | None = None, model_dir: Path | str | None = None, timeout: float = 60.0
) -> tuple[int, str]:
    """Start the service expecting it to refuse to start; returns (exit code, output)."""
    server = launch_server(env, model_dir)
    try:
        code = server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.stop()
        raise AssertionError(f"service did not exit within {timeout} s:\n{server.log()}") from None
    return code, server.log()
