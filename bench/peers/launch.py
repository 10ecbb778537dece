"""The servers side by side: this service and each peer as process trees pinned to the service's core.

A peer runs from its own virtual environment (bench/.venvs/<peer>, made by `bash bench/run.sh
--peers` from bench/peers/<peer>.txt) under `taskset`, so every process it forks stays on the
service's core. Each "deployment" is one process tree with one port; BentoML needs two (its JSON
service alone, and the .npy entry service with the JSON one as its dependency).

Servers that are not taking their turn are stopped with SIGSTOP: LitServe's inference worker
polls its queue every millisecond even when idle, which would take CPU from whoever is measured.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.server import BenchServer
from bench.suite import default_model_dir
from devtools.live import MODELS_DIR, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PEERS_DIR = REPO_ROOT / "bench" / "peers"
VENVS_DIR = REPO_ROOT / "bench" / ".venvs"
MODEL = "mnist"  # the shipped model whose decoder every server runs
READY_TIMEOUT_S = 180.0  # BentoML starts an arbiter, then a worker process per service
OURS = "this service"

# The packages whose versions each result names, per virtual environment.
VERSIONED = ("fastapi", "uvicorn", "bentoml", "litserve", "onnxruntime", "numpy", "pydantic", "uvloop", "httptools")


@dataclass(frozen=True)
class Deployment:
    """One process tree to start: its argv for a port, and the path that answers 200 once it is ready."""

    key: str
    argv: Callable[[Path, int], list[str]]  # (venv python, port) -> argv
    ready_path: str


@dataclass(frozen=True)
class Server:
    """A server in the comparison: its deployments, and per scenario the deployment and target that answer."""

    name: str
    venv: str | None  # bench/.venvs/<venv>; None for this service (the main .venv)
    deployments: tuple[Deployment, ...]
    routes: dict[str, tuple[str, str]]  # scenario key -> (deployment key, request target)
    images_from_json: Callable[[Any], Any]  # its natural JSON answer -> the images in it
    source: str = ""  # its file in bench/peers

    @property
    def python(self) -> Path:
        return VENVS_DIR / (self.venv or "") / "bin" / "python"


def _bentoml(service: str) -> Callable[[Path, int], list[str]]:
    def argv(python: Path, port: int) -> list[str]:
        return [
            str(python),
            "-m",
            "bentoml",
            "serve",
            f"bentoml_service:{service}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]

    return argv


def _plain_fastapi(python: Path, port: int) -> list[str]:
    return [
        str(python),
        "-m",
        "uvicorn",
        "plain_fastapi:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
    ]


def _litserve(python: Path, port: int) -> list[str]:
    return [str(python), "litserve_server.py", "--port", str(port)]


def _images_key(answer: Any) -> Any:
    return answer["images"]


def _bare(answer: Any) -> Any:
    return answer


# Scenario keys (bench/peers/compare.py): "json" one latent, natural JSON answer; "npy" one latent,
# .npy answer; "batch256" 256 latents, .npy answer.
THIS_SERVICE = Server(
    OURS,
    None,
    (),
    {"json": ("", "/decode?format=json"), "npy": ("", "/decode?format=npy"), "batch256": ("", "/decode?format=npy")},
    _images_key,  # base64 PNGs, quantised as the service's PNGs are
)
PEERS = (
    Server(
        "plain FastAPI",
        "plain_fastapi",
        (Deployment("app", _plain_fastapi, "/health"),),
        {"json": ("app", "/decode"), "npy": ("app", "/decode_npy"), "batch256": ("app", "/decode_npy")},
        _images_key,
        "plain_fastapi.py",
    ),
    Server(
        "BentoML",
        "bentoml",
        (
            Deployment("json", _bentoml("Decoder"), "/readyz"),
            Deployment("npy", _bentoml("DecoderNpy"), "/readyz"),
        ),
        {"json": ("json", "/decode"), "npy": ("npy", "/decode_npy"), "batch256": ("npy", "/decode_npy")},
        _bare,  # BentoML answers the ndarray itself, a bare list
        "bentoml_service.py",
    ),
    Server(
        "LitServe",
        "litserve",
        (Deployment("app", _litserve, "/health"),),
        {"json": ("app", "/decode"), "npy": ("app", "/decode_npy"), "batch256": ("app", "/decode_npy")},
        _images_key,
        "litserve_server.py",
    ),
)


def decoder_path() -> Path:
    """The shipped decoder the service loads for MODEL, as its card names it."""
    model_dir = default_model_dir(MODELS_DIR, MODEL)
    card = json.loads((model_dir / "model.json").read_text())
    return model_dir / card["files"]["decoder"]["path"]


class Running:
    """A started, ready process tree on 127.0.0.1:port that can be paused and resumed as a whole."""

    def __init__(self, label: str, port: int, pid: int, stop: Callable[[], None], log: Callable[[], str]) -> None:
        self.label = label
        self.port = port
        self.pid = pid
        self._stop = stop
        self.log = log

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _signal(self, sig: int) -> None:
        for process in self.processes():
            try:
                process.send_signal(sig)
            except psutil.NoSuchProcess:
                pass

    def suspend(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in the tree."""
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def affinities(self) -> set[frozenset[int]]:
        """The distinct CPU sets of the tree's processes (one set when all are pinned alike)."""
        found = set()
        for process in self.processes():
            try:
                found.add(frozenset(process.cpu_affinity()))
            except psutil.Error:
                continue
        return found

    def stop(self) -> None:
        self.resume()  # a stopped process cannot act on SIGTERM
        self._stop()


def start_ours(cpus: set[int] | None) -> Running:
    server = BenchServer(OURS, {}, cpus)
    return Running(OURS, server.port, server.server.pid, server.stop, server.server.log)


def start_deployment(server: Server, deployment: Deployment, cpus: set[int] | None) -> Running:
    """Start one peer deployment under taskset in its own session (so it stops as a group); wait for ready."""
    if not server.python.exists():
        raise SystemExit(f"bench.peers: {server.python} is missing; run `bash bench/run.sh --peers` to create it")
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-peer-{server.venv}-"))  # its log, BentoML's home; removed at stop
    env = {**os.environ, "PEER_DECODER": str(decoder_path())}
    if server.venv == "bentoml":  # no usage reports, and its home (models, bentos, tmp) in the scratch folder
        env.update(BENTOML_DO_NOT_TRACK="True", BENTOML_HOME=str(scratch / "bentoml"))
    argv = deployment.argv(server.python, port)
    if cpus:
        argv = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *argv]
    log_path = scratch / "log.txt"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv, cwd=PEERS_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log() -> str:
        try:
            return log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop() -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(scratch, ignore_errors=True)

    label = server.name if len(server.deployments) == 1 else f"{server.name} ({deployment.key})"
    running = Running(label, port, process.pid, stop, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited with {process.returncode} (log kept: {log_path}):\n{log()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{deployment.ready_path}", timeout=2.0).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    tail = log()
    stop()
    raise RuntimeError(f"{label} not ready within {READY_TIMEOUT_S:.0f} s:\n{tail}")


def venv_versions(server: Server) -> dict[str, str]:
    """Versions of the VERSIONED packages installed in the server's environment."""
    python = server.python if server.venv else Path(sys.executable)
    script = (
        "import importlib.metadata as m, json, platform\n"
        f"names = {VERSIONED!r}\n"
        "found = {}\n"
        "for name in names:\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "found['python'] = platform.python_version()\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)
