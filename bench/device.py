"""`python -m bench.device`: issue 17's accelerator check, prepared to run in one call.

For each provider (CUDA when this onnxruntime offers it, then the CPU) and each `--workers` count
(`--cuda-workers` for CUDA): start the service with `VAE_PROVIDER` and `VAE_WORKERS`, check that
GET /models names that provider for every model, then measure `/sample?n=256` (.npy, images/s)
and `/decode` with one latent (JSON in, .npy out, req/s) at `--concurrency` connections, each
beside onnxruntime's in-process images/s at batch 256 on the same provider (bench/ceiling.py, the
service's own session options). Each run takes cores 1..N for the service and leaves core 0 to the
load generator, whose own CPU is shown: at 100% it, not the service, sets the figure. Prints one
markdown table and writes it, with every number as JSON, to `--results` (default: $OUT when set,
else bench/results).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort
import psutil

from bench import traffic
from bench.loadgen import closed_loop
from bench.report import git_commit
from bench.server import BenchServer
from devtools.live import MODELS_DIR, REPO_ROOT

PROVIDER_NAMES = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


@dataclass
class Cell:
    provider: str
    workers: int
    models_on_provider: str  # "3/3": models whose GET /models provider is the one asked for
    ceiling_images_s: float  # in-process, batch 256, one process
    sample_images_s: float
    sample_errors: dict[str, int]
    decode_req_s: float
    decode_p99_ms: float
    decode_errors: dict[str, int]
    client_cpu_percent: float
    failure: str | None = None  # why the service did not start (its last log line)


def providers(requested: str) -> list[str]:
    """`auto`: cuda first when onnxruntime has it, then cpu; or a comma list of cuda, cpu."""
    if requested != "auto":
        return requested.split(",")
    return (["cuda"] if PROVIDER_NAMES["cuda"] in ort.get_available_providers() else []) + ["cpu"]


def in_process(provider: str, cpus: set[int] | None, seconds: float) -> float:
    """The default model's decoder images/s at batch 256 in-process on `provider` (bench/ceiling.py)."""
    argv = [sys.executable, "-m", "bench.ceiling", "--model-dir", str(MODELS_DIR / "mnist")]
    argv += ["--graphs", "decoder", "--batches", "256", "--seconds", str(seconds)]
    if cpus:
        argv += ["--cpu", str(min(cpus))]
    env = {**os.environ, "VAE_PROVIDER": provider}
    found = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO_ROOT, env=env)
    return float(json.loads(found.stdout)["graphs"]["decoder"]["256"])


def measure(provider: str, workers: int, concurrency: int, duration_s: float) -> Cell:
    cores = os.cpu_count() or 1
    cpus = set(range(1, 1 + workers)) if cores > workers else None  # core 0: the load generator
    if cpus:
        os.sched_setaffinity(0, {0})
    env = {"VAE_PROVIDER": provider, "VAE_WORKERS": str(workers)}
    try:
        server = BenchServer(f"{provider} x{workers}", env, cpus)
    except RuntimeError as exc:  # it refuses to start when the provider asked for is not active
        last = str(exc).strip().splitlines()[-1]
        nan = float("nan")
        return Cell(provider, workers, "0/?", nan, nan, {}, nan, nan, {}, nan, last)
    try:
        models = server.get("/models").json()["models"]
        on_provider = sum(m.get("provider") == PROVIDER_NAMES[provider] for m in models)
        me = psutil.Process()
        started = me.cpu_times()
        wall = time.perf_counter()
        sample = closed_loop(server.port, traffic.sample(server.port, 256, "npy"), concurrency, duration_s)
        latent_dim = next(m for m in models if m["name"] == "mnist")["card"]["latent_dim"]
        load = traffic.latents(server.port, "/decode?format=npy", latent_dim)
        decode = closed_loop(server.port, load, concurrency, duration_s)
        spent = me.cpu_times()
        client = 100.0 * (spent.user + spent.system - started.user - started.system) / (time.perf_counter() - wall)
    finally:
        server.stop()
    return Cell(
        provider,
        workers,
        f"{on_provider}/{len(models)}",
        in_process(provider, {1} if cpus else None, max(0.5, duration_s / 2)),
        sample.images_per_s,
        sample.errors,
        decode.requests_per_s,
        decode.percentile_ms(99),
        decode.errors,
        client,
    )


def table(cells: list[Cell]) -> str:
    lines = [
        "| provider | --workers | models on it | in-process images/s (batch 256, one process) | /sample n=256 images/s "
        "| of in-process | /decode n=1 req/s | p99 ms | errors | load generator CPU |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for c in cells:
        if c.failure is not None:
            lines.append(
                f"| {c.provider} | {c.workers} | {c.models_on_provider} | the service did not start: {c.failure} |"
            )
            continue
        errors = {**c.sample_errors, **c.decode_errors}
        lines.append(
            f"| {c.provider} | {c.workers} | {c.models_on_provider} | {c.ceiling_images_s:,.0f} "
            f"| {c.sample_images_s:,.0f} | {c.sample_images_s / c.ceiling_images_s:.2f}x | {c.decode_req_s:,.0f} "
            f"| {c.decode_p99_ms:.1f} | {errors or '-'} | {c.client_cpu_percent:.0f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.device", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", default="auto", help="auto, or a comma list of cuda, cpu")
    parser.add_argument("--workers", default="1,2,4,8", help="CPU runs: server processes")
    parser.add_argument("--cuda-workers", default="1", help="CUDA runs: server processes sharing the one GPU")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per endpoint and cell")
    default_results = Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO_ROOT / "bench" / "results"
    parser.add_argument("--results", type=Path, default=default_results)
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    cells = []
    for provider in providers(args.providers):
        counts = [int(w) for w in (args.cuda_workers if provider == "cuda" else args.workers).split(",")]
        for workers in counts:
            if workers > 1 and workers >= cores:
                print(f"bench.device: skipping --workers {workers}: {cores} cores leave none to the load generator")
                continue
            cells.append(measure(provider, workers, args.concurrency, args.duration))
            print(f"  {provider} x{workers}: {cells[-1]}", flush=True)
    header = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at `{git_commit(REPO_ROOT)}`; "
        f"{cores} cores; onnxruntime {ort.__version__}, providers offered: {', '.join(ort.get_available_providers())}"
    )
    report = f"{header}\n\n{table(cells)}\n"
    print(f"\n{report}")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "device.md").write_text(report)
    (args.results / "device.json").write_text(json.dumps({"header": header, "cells": [asdict(c) for c in cells]}))
    wrong = [c for c in cells if c.failure is not None or len(set(c.models_on_provider.split("/"))) != 1]
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
