"""`python -m bench.peers --check`: one request per scenario to every server, each answer compared
with onnxruntime in-process on the same latents, so the comparison serves the same images.

The reference session is built with the service's own options (service.registry.session_options);
with one intra-op thread a row's result does not depend on the batch it rides in, so every float
answer must equal it bit for bit. The service's natural JSON answer holds PNGs, so it must equal
the reference quantised as the service quantises (service.inference.to_uint8). Each server is also
paused and resumed once before its requests, as a measured run does between turns, and every
answer must carry Content-Length (bench/loadgen.py reads nothing else to find a response's end).
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
from PIL import Image

from bench.peers.compare import SCENARIOS, Scenario
from bench.peers.launch import Running, Server
from service.config import Settings
from service.inference import to_uint8
from service.registry import session_options

SEED = 17


@dataclass
class Checked:
    server: str
    scenario: str
    status: int
    content_length: bool
    shape: tuple[int, ...] | None
    equal: bool
    detail: str
    pinned: bool

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.content_length and self.equal and self.pinned


class Reference:
    """The decoder in-process, with the service's session options on the CPU provider."""

    def __init__(self, decoder_path: Path) -> None:
        self.session = ort.InferenceSession(
            str(decoder_path), session_options(Settings()), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.latent_dim = int(self.session.get_inputs()[0].shape[1])

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: latents.astype(np.float32)})[0]


def request_latents(latent_dim: int, rows: int, seed: int = SEED) -> np.ndarray:
    """Latents rounded to 6 decimals, as bench/traffic.py sends them; float32 as every server reads them."""
    rng = np.random.default_rng(seed)
    return np.asarray(rng.standard_normal((rows, latent_dim)).round(6), dtype=np.float32)


def answer_images(server: Server, scenario: Scenario, response: httpx.Response) -> np.ndarray:
    """The images in an answer: float32 [N, 1, 28, 28] from .npy or a float list, uint8 [N, 28, 28] from PNGs."""
    if scenario.answer == "npy":
        return np.load(io.BytesIO(response.content), allow_pickle=False)
    images = server.images_from_json(json.loads(response.content))
    if server.venv is None:  # this service: base64 PNGs
        return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(png)))) for png in images])
    return np.asarray(images, dtype=np.float64)


def expected_images(server: Server, scenario: Scenario, reference: np.ndarray) -> np.ndarray:
    if scenario.answer == "json" and server.venv is None:
        return to_uint8(reference)  # [N, H, W], as the PNGs decode
    if scenario.answer == "json":
        return reference.astype(np.float64)  # a JSON float is the float32 value, exactly, as a double
    return reference


def compare(answer: np.ndarray, expected: np.ndarray) -> tuple[bool, str]:
    """(equal, what differs): same shape and dtype kind, and every value identical."""
    if answer.shape != expected.shape:
        return False, f"shape {answer.shape}, expected {expected.shape}"
    if answer.dtype != expected.dtype:
        return False, f"dtype {answer.dtype}, expected {expected.dtype}"
    if np.array_equal(answer, expected):
        return True, "identical"
    worst = float(np.max(np.abs(answer.astype(np.float64) - expected.astype(np.float64))))
    return False, f"max |difference| {worst:.3g} over {int(np.sum(answer != expected))} values"


def check_server(
    server: Server,
    routes: dict[str, tuple[Running, str]],
    reference: Reference,
    cpus: set[int] | None,
) -> list[Checked]:
    results = []
    for running in {id(r): r for r, _ in routes.values()}.values():
        running.suspend()
        running.resume()
    for scenario in SCENARIOS:
        running, target = routes[scenario.key]
        latents = request_latents(reference.latent_dim, scenario.rows)
        response = httpx.post(
            f"http://127.0.0.1:{running.port}{target}", json={"latents": latents.tolist()}, timeout=60.0
        )
        shape: tuple[int, ...] | None = None
        equal, detail = False, response.text[:200]
        if response.status_code == 200:
            try:
                answer = answer_images(server, scenario, response)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                detail = f"unreadable answer: {exc}"
            else:
                shape = answer.shape
                equal, detail = compare(answer, expected_images(server, scenario, reference.decode(latents)))
        affinities = running.affinities()
        results.append(
            Checked(
                running.label,
                scenario.key,
                response.status_code,
                "content-length" in response.headers,
                shape,
                equal,
                detail,
                not cpus or affinities == {frozenset(cpus)},
            )
        )
    return results


def table(results: list[Checked]) -> str:
    lines = [
        "| server | scenario | status | Content-Length | images | equals onnxruntime in-process | pinned | ok |",
        "|---|---|--:|---|---|---|---|---|",
    ]
    for r in results:
        shape = "x".join(map(str, r.shape)) if r.shape else "-"
        lines.append(
            f"| {r.server} | {r.scenario} | {r.status} | {'yes' if r.content_length else '**no**'} | {shape} "
            f"| {r.detail} | {'yes' if r.pinned else '**no**'} | {'yes' if r.ok else '**no**'} |"
        )
    return "\n".join(lines)
