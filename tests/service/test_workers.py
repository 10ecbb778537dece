"""`python -m service serve --workers N`: N processes on one port, each serving on its own, and one
SIGTERM that stops them all."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil

from devtools.live import MODELS_DIR, REPO_ROOT, free_port


def start(*args: str, model_dir) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VAE_")}
    env["VAE_LOG_LEVEL"] = "warning"
    return subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--model-dir", str(model_dir), *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_ready(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("not ready in 120 s")


def worker_processes(parent: psutil.Process) -> list[psutil.Process]:
    """uvicorn's workers: the supervisor's spawned children (not multiprocessing's resource tracker)."""
    return [child for child in parent.children() if "spawn_main" in " ".join(child.cmdline())]


def answering_pids(workers: list[psutil.Process], port: int, connections: int = 16) -> set[int]:
    """Hold `connections` kept-alive connections at once; the pids of the workers that hold them."""
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for _ in range(connections)]
    try:
        with ThreadPoolExecutor(connections) as pool:
            answers = list(pool.map(lambda client: client.post("/sample?n=2&seed=1&format=npy"), clients))
        assert {answer.status_code for answer in answers} == {200}
        assert len({answer.content for answer in answers}) == 1  # every worker gives the same answer
        return {
            worker.pid
            for worker in workers
            for connection in worker.net_connections("tcp")
            if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port
        }
    finally:
        for client in clients:
            client.close()


def test_two_workers_share_the_port_each_answers_and_one_sigterm_stops_both(tmp_path):
    shutil.copytree(MODELS_DIR / "mnist", tmp_path / "mnist")
    port = free_port()
    process = start("--workers", "2", "--port", str(port), model_dir=tmp_path)
    try:
        wait_ready(process, port)
        workers = worker_processes(psutil.Process(process.pid))
        assert len(workers) == 2
        # Connections go to whichever worker accepts first: a few rounds reach both.
        seen: set[int] = set()
        for _ in range(5):
            seen |= answering_pids(workers, port)
            if len(seen) == 2:
                break
        assert seen == {worker.pid for worker in workers}
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(60)
    assert status == 0, process.stdout.read().decode() if process.stdout else ""
    assert not any(worker.is_running() for worker in workers)


def test_workers_below_1_is_refused_naming_the_setting(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--workers", "0", "--model-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "VAE_WORKERS" in result.stderr


def test_a_worker_fails_ready_on_the_signal_that_stops_its_server():
    """uvicorn builds a worker's app inside its own signal handlers; worker_app wraps them."""
    from service.__main__ import worker_app

    stopped = []
    previous = {
        sig: signal.signal(sig, lambda sig, frame: stopped.append(sig)) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        app = worker_app()
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert app.state.service.shutting_down and stopped == [signal.SIGTERM]


def test_several_workers_on_one_gpu_are_warned_about_and_cpu_models_are_not():
    from types import SimpleNamespace

    from service.__main__ import gpu_sharing_warning
    from service.registry import CPU, CUDA

    registry = SimpleNamespace(models={"emoji": SimpleNamespace(provider=CPU), "mnist": SimpleNamespace(provider=CUDA)})
    warning = gpu_sharing_warning(4, registry)
    assert warning and warning.startswith("4 worker processes share the GPU for mnist:") and "emoji" not in warning
    assert gpu_sharing_warning(1, registry) is None
    assert gpu_sharing_warning(4, SimpleNamespace(models={"emoji": SimpleNamespace(provider=CPU)})) is None
