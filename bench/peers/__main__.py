"""`python -m bench.peers`: this service against plain FastAPI, BentoML and LitServe, side by side.

Every server runs the shipped MNIST decoder on the service's core; the load generator runs on
the other. Use `bash bench/run.sh --peers`, which first creates each peer's virtual environment.

- `--check`: start every server once, pause and resume it, send one request per scenario and
  compare each answer with onnxruntime in-process (bench/peers/check.py). No load; under a minute
  after the servers are up.
- otherwise: the scenarios at 1, 32 and 64 connections in rounds (bench/peers/compare.py); writes
  bench/results/peers.md, a dated copy and peers.json, and prints the markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers import check, compare, launch
from bench.report import git_commit, machine
from bench.suite import cpu_layout

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results"


def start_all(
    stack: contextlib.ExitStack, servers: list[launch.Server], cpus: set[int] | None
) -> list[tuple[launch.Server, dict[str, tuple[launch.Running, str]]]]:
    """Start every server's deployments (stopped again when `stack` closes); per server, scenario -> (Running, target)."""
    started = []
    for server in servers:
        print(f"starting {server.name}", flush=True)
        if server.venv is None:
            ours = launch.start_ours(cpus)
            stack.callback(ours.stop)
            running = {"": ours}
        else:
            running = {}
            for deployment in server.deployments:
                running[deployment.key] = launch.start_deployment(server, deployment, cpus)
                stack.callback(running[deployment.key].stop)
        routes = {key: (running[deployment], target) for key, (deployment, target) in server.routes.items()}
        started.append((server, routes))
    return started


@dataclass
class Run:
    """What a result names besides its cells: when, where, on which versions."""

    started_at: float
    server_cpus: set[int] | None
    client_cpus: set[int] | None
    versions: dict[str, dict[str, str]]
    loads: list[tuple[float, float, float]] = field(default_factory=list)
    took_s: float = 0.0


def header(run: Run, verb: str = "Measured") -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(run.started_at))
    pin = (
        f"every server pinned to CPU {sorted(run.server_cpus)}, load generator to CPU {sorted(run.client_cpus or [])}"
        if run.server_cpus
        else "no pinning (fewer than 2 cores)"
    )
    loads = " -> ".join("/".join(f"{x:.2f}" for x in avg) for avg in run.loads)
    lines = [
        f"{verb} {when} at commit `{git_commit()}` in {run.took_s:.0f} s; machine: {machine()}.",
        f"{pin}; load average (1/5/15 min) before -> after: {loads}.",
        "",
        "| server | versions |",
        "|---|---|",
    ]
    for name, found in run.versions.items():
        lines.append(f"| {name} | {', '.join(f'{k} {v}' for k, v in found.items())} |")
    return "\n".join(lines)


def markdown(run: Run, cells: list[compare.Cell]) -> str:
    peers = [server.name for server in launch.PEERS]
    return "\n".join(
        [
            header(run),
            "",
            "**At a glance** (medians over the turns; ours / theirs above 1.00x: this service is faster)",
            "",
            compare.glance_table(cells, launch.OURS, peers),
            "",
            "**Against the compute ceiling** (onnxruntime in-process on the servers' core, the service's own "
            "session options, same batch, taken just before and after each of our turns with every server paused; "
            "each turn against the mean of its two)",
            "",
            compare.ceiling_table(cells, launch.OURS),
            "",
            "**Every cell** (latency over all turns together; server CPU: the median turn's, its whole process tree)",
            "",
            compare.full_table(cells, launch.OURS),
            "",
        ]
    )


def raw(run: Run, cells: list[compare.Cell]) -> dict:
    return {
        "started_at": run.started_at,
        "took_s": run.took_s,
        "server_cpus": sorted(run.server_cpus or []),
        "client_cpus": sorted(run.client_cpus or []),
        "load_average": run.loads,
        "versions": run.versions,
        "cells": [
            {
                "server": c.server,
                "scenario": c.scenario,
                "concurrency": c.concurrency,
                "requests_per_s_median": c.requests_per_s,
                "images_per_s_median": c.images_per_s,
                "requests_per_s_turns": [t.requests_per_s for t in c.turns],
                "p50_ms": c.merged.percentile_ms(50),
                "p99_ms": c.merged.percentile_ms(99),
                "errors": c.merged.errors,
                "server_cpu_percent_turns": c.cpu_percent,
                "ceiling_images_per_s_around_turns": c.ceilings,
                "of_ceiling_turns": c.of_ceiling,
            }
            for c in cells
        ],
    }


def write(run: Run, cells: list[compare.Cell], folder: Path) -> str:
    """peers.md, a dated copy and peers.json in `folder`; returns the markdown."""
    text = markdown(run, cells)
    folder.mkdir(parents=True, exist_ok=True)
    latest = folder / "peers.md"
    latest.write_text(text)
    shutil.copyfile(latest, folder / f"peers-{time.strftime('%Y-%m-%d', time.gmtime(run.started_at))}.md")
    (folder / "peers.json").write_text(json.dumps(raw(run, cells), indent=1) + "\n")
    return text


def in_process(cpus: set[int] | None, rows: int, seconds: float = 1.0) -> float:
    """The shipped MNIST decoder's images/s at batch `rows`, in-process (bench/ceiling.py) on `cpus`."""
    argv = [sys.executable, "-m", "bench.ceiling", "--model-dir", str(launch.decoder_path().parent)]
    argv += ["--graphs", "decoder", "--batches", str(rows), "--seconds", str(seconds)]
    if cpus:
        argv += ["--cpu", str(min(cpus))]
    found = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return float(json.loads(found.stdout)["graphs"]["decoder"][str(rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="one request per scenario, answers compared; no load")
    parser.add_argument(
        "--duration", type=float, default=6.0, help="measured seconds per server and cell, over all rounds"
    )
    parser.add_argument("--rounds", type=int, default=compare.ROUNDS)
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds before each turn")
    parser.add_argument("--concurrency", default=",".join(map(str, compare.CONCURRENCY)))
    parser.add_argument("--results", type=Path, default=RESULTS, help="output folder (default bench/results)")
    args = parser.parse_args(argv)

    server_cpus, client_cpus = cpu_layout()
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    servers = [launch.THIS_SERVICE, *launch.PEERS]
    run = Run(time.time(), server_cpus, client_cpus, {s.name: launch.venv_versions(s) for s in servers})
    run.loads.append(os.getloadavg())
    reference = check.Reference(launch.decoder_path())
    with contextlib.ExitStack() as stack:
        started = start_all(stack, servers, server_cpus)
        if args.check:
            results = [r for s, routes in started for r in check.check_server(s, routes, reference, server_cpus)]
            run.took_s = time.time() - run.started_at
            print(f"\n{header(run, 'Checked')}\n\n{check.table(results)}")
            failed = [r for r in results if not r.ok]
            print(f"\n{len(results) - len(failed)} of {len(results)} answers ok")
            return 1 if failed else 0
        for _, routes in started:
            for running, _ in routes.values():
                running.suspend()
        cells = compare.measure(
            [(s.name, routes) for s, routes in started],
            reference.latent_dim,
            concurrency=[int(c) for c in args.concurrency.split(",")],
            rounds=args.rounds,
            slice_s=args.duration / args.rounds,
            warmup_s=args.warmup,
            ceiling=lambda rows: in_process(server_cpus, rows),
            keep_awake=bool(client_cpus),
        )
    run.loads.append(os.getloadavg())
    run.took_s = time.time() - run.started_at
    print(f"\n{write(run, cells, args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
