"""One many-row request in-process, against onnxruntime alone: `python -m bench.big_request`.

Issue 17 asks 256 latents per request to reach 90% of onnxruntime's in-process images/s. Over HTTP
that ratio also carries the socket and the load generator's turnaround. This takes those away:
`create_app()` with its lifespan and its real engine, then ASGI calls straight into it (no
uvicorn, no socket) with one JSON body of ROWS latents and a `.npy` answer, in alternating rounds
with the decoder session's own `run` on a batch of the same size. Prints a markdown table per
round: milliseconds per request, the part inside `session.run`, the session alone, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

import numpy as np

from bench.asgi_cost import http_scope


async def measure(rows: int, requests: int, rounds: int) -> list[dict[str, float]]:
    from service.app import create_app
    from service.config import Settings
    from service.registry import GRAPH_INPUT, GRAPH_OUTPUTS

    app = create_app(Settings())
    results = []
    async with app.router.lifespan_context(app):
        model = app.service.registry.find(None)
        session = model.sessions["decoder"]
        run = session.run
        inside = [0.0]

        def timed_run(*args, **kwargs):  # the app's own calls, timed where they enter onnxruntime
            started = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                inside[0] += time.perf_counter() - started

        session.run = timed_run
        rng = np.random.default_rng(0)
        body = json.dumps({"latents": rng.standard_normal((rows, model.latent_dim)).round(6).tolist()}).encode()
        scope = http_scope("POST", "/decode", "format=npy", body, "application/json")
        statuses: list[int] = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        feeds = {GRAPH_INPUT["decoder"]: rng.standard_normal((rows, model.latent_dim), dtype=np.float32)}
        outputs = list(GRAPH_OUTPUTS["decoder"])
        for _ in range(3):  # warm-up: first-call paths, the arena
            await app(dict(scope), receive, send)
            run(outputs, feeds)
        for _ in range(rounds):
            inside[0] = 0.0
            started = time.perf_counter()
            for _ in range(requests):
                await app(dict(scope), receive, send)
            request_s = (time.perf_counter() - started) / requests
            started = time.perf_counter()
            for _ in range(requests):
                run(outputs, feeds)
            alone_s = (time.perf_counter() - started) / requests
            results.append(
                {"request_ms": request_s * 1e3, "inside_ms": inside[0] / requests * 1e3, "alone_ms": alone_s * 1e3}
            )
        if set(statuses) != {200}:
            raise SystemExit(f"bench.big_request: /decode answered {sorted(set(statuses))}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=256, help="latents in the one request (default 256)")
    parser.add_argument("--requests", type=int, default=40, help="requests and session runs per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=1 if (os.cpu_count() or 1) > 1 else None, help="pin to this core")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    results = asyncio.run(measure(args.rows, args.requests, args.rounds))
    print(f"/decode with {args.rows} JSON latents, .npy answer, in-process; {args.requests} requests per round\n")
    print("| round | request ms | of it in session.run ms | session.run alone ms | alone / request |")
    print("|---|--:|--:|--:|--:|")
    for index, r in enumerate(results, 1):
        print(
            f"| {index} | {r['request_ms']:.2f} | {r['inside_ms']:.2f} | {r['alone_ms']:.2f} "
            f"| {r['alone_ms'] / r['request_ms']:.0%} |"
        )
    ratios = [r["alone_ms"] / r["request_ms"] for r in results]
    beyond = [r["request_ms"] - r["inside_ms"] for r in results]
    print(
        f"| median | | | | {statistics.median(ratios):.0%} |\n\nbeyond onnxruntime per request: "
        f"{statistics.median(beyond):.2f} ms (median over rounds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
