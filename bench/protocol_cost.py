"""`python -m bench.protocol_cost`: what one HTTP/1.1 request costs in the connection protocol alone.

The same two-byte ASGI app (it reads the body, answers "ok") served by uvicorn twice: once with
uvicorn's own httptools protocol, once with the service's (`service/connections.py`), each in its
own process pinned to the service's core, the load generator on the other, one `/decode`-sized
JSON POST per request at 32 connections. The two take turns for `--rounds` rounds; printed per
protocol: req/s per round, the median, and server CPU microseconds per request (its whole process).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

import psutil

from bench import loadgen, traffic
from bench.server import pin
from devtools.live import free_port

PROTOCOLS = ("uvicorn httptools", "service/connections.py")


async def two_bytes(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def serve(protocol: str, port: int) -> None:
    import uvicorn

    from service.config import Settings
    from service.connections import guarded_protocol

    http = "httptools" if protocol == PROTOCOLS[0] else guarded_protocol(Settings(), None)
    uvicorn.run(
        two_bytes, host="127.0.0.1", port=port, http=http, loop="uvloop", lifespan="off",
        access_log=False, log_level="warning",
    )  # fmt: skip


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def measure(protocol: str, duration_s: float, concurrency: int, server_cpu: set[int] | None) -> tuple[float, float]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.protocol_cost", "--serve", protocol, str(port)])
    try:
        pin(process.pid, server_cpu)
        load = traffic.latents(port, "/decode", 32)
        deadline = time.monotonic() + 20
        while not _listening(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"bench.protocol_cost: the {protocol} server did not start")
            time.sleep(0.05)
        watched = psutil.Process(process.pid)
        before = sum(watched.cpu_times()[:2])
        result = loadgen.closed_loop(port, load, concurrency, duration_s, warmup_s=0.5)
        cpu = sum(watched.cpu_times()[:2]) - before  # includes the warm-up: an upper bound
        return result.ok / result.window_s, cpu / max(result.ok, 1) * 1e6
    finally:
        process.terminate()
        process.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per protocol and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve", nargs=2, metavar=("PROTOCOL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    cores = sorted(os.sched_getaffinity(0))
    server_cpu = {cores[-1]} if len(cores) > 1 else None
    if server_cpu:
        os.sched_setaffinity(0, set(cores[:-1]))
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in PROTOCOLS}
    try:
        for index in range(args.rounds):
            order = PROTOCOLS if index % 2 == 0 else PROTOCOLS[::-1]
            for name in order:
                rows[name].append(measure(name, args.duration, args.concurrency, server_cpu))
                print(f"round {index + 1}: {name:24s} {rows[name][-1][0]:9.0f} req/s", flush=True)
    finally:
        os.sched_setaffinity(0, set(cores))
    print(f"\nc={args.concurrency}, {args.rounds} alternating rounds, server on CPU {server_cpu or 'any'}\n")
    print("| protocol | req/s per round | median req/s | server CPU us/request (median) |")
    print("|---|---|--:|--:|")
    for name, found in rows.items():
        turns = " / ".join(f"{rate:,.0f}" for rate, _ in found)
        rate = statistics.median(rate for rate, _ in found)
        cost = statistics.median(us for _, us in found)
        print(f"| {name} | {turns} | {rate:,.0f} | {cost:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
