"""The service's own Python per request, without sockets or inference: `python -m bench.asgi_cost [REV]`.

HTTP load tests on this shared 2-core host move by 10-20% from minute to minute, which hides the
framework work a change removes. This drives the app in-process instead: `create_app()` with its
lifespan run, then ASGI calls straight into it (no uvicorn, no socket), with the engine's
`encode`/`decode` answering at once from precomputed arrays, so what is timed is everything the
service does per request in Python: middlewares, routing, validation, parsing, the response.

With REV, that commit's service (a temporary `git worktree`, as bench.ab uses) is timed too, in
alternating rounds in separate processes. Prints a markdown table: microseconds per request,
the median over rounds, per scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

BOUNDARY = "asgicostboundary"


def scenarios(png: bytes) -> dict[str, tuple[str, str, bytes, str | None]]:
    """name -> (path, query string, body, content type): what a client of each route sends."""
    latent = json.dumps({"latents": [[round(0.01 * i, 4) for i in range(32)]]}).encode()
    upload = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="digit.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    form = f"multipart/form-data; boundary={BOUNDARY}"
    return {
        "/decode n=1 json -> npy": ("/decode", "format=npy", latent, "application/json"),
        "/decode n=1 json -> png": ("/decode", "", latent, "application/json"),
        "/sample n=1 npy": ("/sample", "n=1&seed=3&format=npy", b"", None),
        "/encode 1 png": ("/encode", "", upload, form),
        "/ping": ("/ping", "", b"", None),
    }


def http_scope(method: str, path: str, query: str, body: bytes, content_type: str | None) -> dict:
    """The ASGI scope a client's request to 127.0.0.1 would arrive with."""
    headers = [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _measure(requests: int) -> dict[str, float]:
    """Runs inside the tree being measured: its service package, its models."""
    import numpy as np
    from PIL import Image

    from service.app import create_app
    from service.config import Settings
    from service.inference import Decoded, Encoded, to_uint8

    app = create_app(Settings())
    results: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        engine = app.state.service.engine
        images = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
        decoded, encoded = Decoded(images, to_uint8(images)), Encoded(*np.zeros((2, 1, 32), np.float32))

        async def decode(model, latents, pixels=True):
            return decoded

        async def encode(model, batch):
            return encoded

        engine.decode, engine.encode = decode, encode
        stroke = np.zeros((28, 28), np.uint8)
        stroke[5:23, 12:16] = 255  # a "1": real preprocessing work, no file the old tree might lack
        png = io.BytesIO()
        Image.fromarray(stroke).save(png, "PNG")
        for name, (path, query, body, content_type) in scenarios(png.getvalue()).items():
            scope = http_scope("GET" if path == "/ping" else "POST", path, query, body, content_type)
            statuses: list[int] = []

            async def receive(body=body):
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message, statuses=statuses):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            for _ in range(requests // 10):  # warm-up: caches, first-call paths
                await app(dict(scope), receive, send)
            started = time.perf_counter()
            for _ in range(requests):
                await app(dict(scope), receive, send)
            results[name] = (time.perf_counter() - started) / requests * 1e6
            if set(statuses) != {200}:
                raise SystemExit(f"bench.asgi_cost: {name} answered {sorted(set(statuses))}")
    return results


def _run_tree(tree: Path, requests: int, cpu: int | None) -> dict[str, float]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--measure", "--requests", str(requests)]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VAE_")}, "PYTHONPATH": str(tree)}
    env.update({"VAE_MODEL_DIR": str(tree / "models"), "VAE_LOG_LEVEL": "warning"})
    found = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"bench.asgi_cost: measuring {tree} failed:\n{found.stderr[-2000:]}")
    return json.loads(found.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", nargs="?", help="also time this commit's service, in alternating rounds")
    parser.add_argument("--requests", type=int, default=5000, help="timed requests per scenario and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=1 if (os.cpu_count() or 1) > 1 else None, help="pin to this core")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one tree, JSON out
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.measure:
        print(json.dumps(asyncio.run(_measure(args.requests))))
        return 0

    from bench.ab import checkout
    from bench.report import git_commit

    with checkout(args.revision) if args.revision else contextlib.nullcontext(None) as old:
        this = f"this checkout ({git_commit(REPO_ROOT)})"
        trees = {this: REPO_ROOT, **({args.revision: old} if args.revision else {})}
        rounds: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
        for index in range(args.rounds):
            order = list(trees.items()) if index % 2 == 0 else list(reversed(trees.items()))
            for label, tree in order:
                rounds[label].append(_run_tree(tree, args.requests, args.cpu))
    labels = list(trees)
    names = list(rounds[labels[0]][0])
    print(f"in-process ASGI calls, engine answering at once; median of {args.rounds} rounds of {args.requests}")
    print("requests per scenario; microseconds of the service's Python per request\n")
    header = "| scenario | " + " | ".join(labels) + (f" | {labels[1]} / this |" if len(labels) > 1 else " |")
    print(header)
    print("|---|" + "--:|" * (len(labels) + (1 if len(labels) > 1 else 0)))
    for name in names:
        medians = [statistics.median(r[name] for r in rounds[label]) for label in labels]
        cells = [f"{m:.1f}" for m in medians] + ([f"{medians[1] / medians[0]:.2f}x"] if len(medians) > 1 else [])
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
