"""The compute ceiling: onnxruntime in-process, no HTTP, the service's own sessions and options.

Run as a subprocess pinned to the server's core (`python -m bench.ceiling --cpu 1`), so the
ceiling and the service are measured on the same core in the same run. It loads the models the
way the service does (service.registry.load_model: same SessionOptions, same provider choice),
so whatever models/ holds is what gets measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from service.config import Settings
from service.registry import GRAPH_INPUT, GRAPH_OUTPUTS, load_model

REPO_ROOT = Path(__file__).resolve().parent.parent

BATCHES = (1, 16, 64, 256)


def images_per_second(session, graph: str, batch: np.ndarray, seconds: float) -> float:
    feeds = {GRAPH_INPUT[graph]: batch}
    outputs = list(GRAPH_OUTPUTS[graph])
    for _ in range(3):
        session.run(outputs, feeds)
    runs = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        session.run(outputs, feeds)
        runs += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    return runs * len(batch) / (now - started)


def measure(model_dir: Path, batches=BATCHES, seconds: float = 0.5, graphs=("decoder", "encoder")) -> dict:
    settings = Settings(model_dir=model_dir.parent)
    model = load_model(model_dir, settings)
    rng = np.random.default_rng(0)
    result: dict = {
        "model": model.name,
        "version": model.card.version,
        "provider": model.provider,
        "intra_op_threads": settings.intra_op_threads,
        "graphs": {},
    }
    for graph in graphs:
        per_batch = {}
        for size in batches:
            if graph == "decoder":
                batch = rng.standard_normal((size, model.latent_dim), dtype=np.float32)
            else:
                batch = rng.random((size, *model.image_shape), dtype=np.float32)
            per_batch[str(size)] = images_per_second(model.sessions[graph], graph, batch, seconds)
        result["graphs"][graph] = per_batch
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True, help="one model folder (with model.json)")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core (the server's)")
    parser.add_argument("--seconds", type=float, default=0.5, help="timed seconds per graph and batch size")
    parser.add_argument("--graphs", default="decoder,encoder", help="comma-separated graphs (default both)")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help="comma-separated batch sizes")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    batches = tuple(int(size) for size in args.batches.split(","))
    graphs = tuple(args.graphs.split(","))
    json.dump(measure(args.model_dir, batches, args.seconds, graphs), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
