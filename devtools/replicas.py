"""Steady load through the balancer of docker-compose.replicas.yml while every replica is replaced
(scripts/roll-replicas.sh) and then one is killed with SIGKILL and brought back. Every answer is
compared byte for byte with the answer to the same request fetched before the load started.

    python -m devtools.replicas --url http://127.0.0.1:8080 [--rate 50] [--project vae-replicas]

Prints, per phase and in all: sent, ok, failed (an HTTP error), lost (no answer: a reset, a
timeout) and wrong (200 with other bytes), and the balancer's retry counters; exits 1 unless
failed = lost = wrong = 0. scripts/replicas.sh starts the stack and runs this; CI runs that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.replicas.yml"
KILLED = "vae2"
BURST = 12  # large requests sent at once just before the SIGKILL


@dataclass(frozen=True)
class Case:
    """One request whose answer is a pure function of it: the inputs and the seed."""

    path: str
    body: bytes = b""
    content_type: str | None = None


def cases(latent_dim: int, count: int = 32) -> list[Case]:
    """Samples of several sizes by seed, and decodes of fixed latents, all as float32 .npy."""
    rng = np.random.default_rng(0)
    made = []
    for seed in range(count):
        made.append(Case(f"/sample?seed={seed}&n={1 + seed % 8}&format=npy"))
        latents = rng.standard_normal((1 + seed % 4, latent_dim)).round(4).tolist()
        made.append(Case("/decode?format=npy", json.dumps({"latents": latents}).encode(), "application/json"))
    return made


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    lost: int = 0
    wrong: int = 0
    seconds: list[float] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        for name in ("sent", "ok", "failed", "lost", "wrong"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        self.problems.update(other.problems)

    def line(self, phase: str) -> str:
        p99, slowest = np.percentile(self.seconds, [99, 100]) if self.seconds else (0.0, 0.0)
        counts = f"{self.sent:>6} {self.ok:>6} {self.failed:>6} {self.lost:>6} {self.wrong:>6}"
        return f"{phase:<10} {counts} {p99:>7.3f} {slowest:>7.3f}"

    def clean(self) -> bool:
        return self.failed == self.lost == self.wrong == 0


HEADER = f"{'phase':<10} {'sent':>6} {'ok':>6} {'failed':>6} {'lost':>6} {'wrong':>6} {'p99 s':>7} {'max s':>7}"


class Load:
    """Open loop: request i is sent at start + i / rate whatever the answers before it do, so a
    stalled replica shows up as late or lost answers instead of fewer requests."""

    def __init__(self, client: httpx.AsyncClient, expected: dict[Case, bytes], rate: float):
        self.client, self.expected, self.rate = client, expected, rate
        self.plan = list(expected)
        self.phase = "steady"
        self.tallies: dict[str, Tally] = {}
        self.pending: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        start = time.perf_counter()
        for i in range(sys.maxsize):
            if self.stopping.is_set():
                break
            await asyncio.sleep(max(0.0, start + i / self.rate - time.perf_counter()))
            self.send(self.plan[i % len(self.plan)])
        await asyncio.gather(*self.pending)

    def send(self, case: Case) -> None:
        tally = self.tallies.setdefault(self.phase, Tally())
        tally.sent += 1
        task = asyncio.create_task(self.one(case, tally))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def one(self, case: Case, tally: Tally) -> None:
        headers = {"Content-Type": case.content_type} if case.content_type else {}
        started = time.perf_counter()
        try:
            response = await self.client.post(case.path, content=case.body, headers=headers)
        except httpx.TransportError as exc:
            tally.lost += 1
            tally.problems[f"lost: {type(exc).__name__}"] += 1
            return
        tally.seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            tally.failed += 1
            tally.problems[f"failed: {response.status_code} {response.text[:120]}"] += 1
        elif response.content != self.expected[case]:
            tally.wrong += 1
            tally.problems[f"wrong: {case.path}"] += 1
        else:
            tally.ok += 1


def compose(project: str, *args: str) -> list[str]:
    return [*os.environ.get("COMPOSE", "docker compose").split(), "-f", str(COMPOSE_FILE), "-p", project, *args]


async def run(command: list[str], env: dict[str, str] | None = None, capture: bool = True) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=REPO_ROOT, stdout=subprocess.PIPE if capture else None, env={**os.environ, **(env or {})}
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}")
    return out.decode() if out else ""


async def balancer_stat(project: str) -> dict[str, dict[str, str]]:
    """HAProxy's `show stat` for the replicas backend: one row per server, and BACKEND."""
    stat = await run(
        compose(project, "exec", "-T", "balancer", "sh", "-c", "echo 'show stat' | socat stdio /tmp/haproxy-admin.sock")
    )
    header, *rows = [line.split(",") for line in stat.splitlines() if line]
    names = [name.removeprefix("# ") for name in header]
    return {row[1]: dict(zip(names, row, strict=False)) for row in rows if row[0] == "replicas"}


def retried(stat: dict[str, dict[str, str]], server: str) -> int:
    """Requests HAProxy sent again after they failed on `server`: wretr (retries) + wredis (redispatches)."""
    return sum(int(stat[server][name] or 0) for name in ("wretr", "wredis"))


async def fetch_expected(client: httpx.AsyncClient, plan: list[Case]) -> dict[Case, bytes]:
    """Before any disruption: the answer each request must get."""
    expected = {}
    for case in plan:
        headers = {"Content-Type": case.content_type} if case.content_type else {}
        response = await client.post(case.path, content=case.body, headers=headers)
        response.raise_for_status()
        expected[case] = response.content
    return expected


async def exercise(url: str, rate: float, project: str, settle_s: float) -> bool:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:
        card = (await client.get("/models")).json()["models"][0]["card"]
        heavy = [Case(f"/sample?seed={seed}&n=512&format=npy") for seed in range(BURST)]
        expected = await fetch_expected(client, cases(card["latent_dim"]))
        expected_heavy = await fetch_expected(client, heavy)
        load = Load(client, expected, rate)
        load.expected.update(expected_heavy)
        sending = asyncio.create_task(load.run())
        marks = [("steady", time.perf_counter())]
        await asyncio.sleep(settle_s)

        load.phase = "rolling"
        marks.append((load.phase, time.perf_counter()))
        print(f"replicas: replacing every replica under {rate:g} requests/s", flush=True)
        await run(["bash", "scripts/roll-replicas.sh"], {"REPLICAS_PROJECT": project}, capture=False)
        await asyncio.sleep(settle_s)

        load.phase = "sigkill"
        marks.append((load.phase, time.perf_counter()))
        container = (await run(compose(project, "ps", "-q", KILLED))).strip()
        before = await balancer_stat(project)
        # Large requests just before the kill, so that some are in flight on the replica that dies.
        for case in heavy:
            load.send(case)
        await asyncio.sleep(0.02)
        await run(["docker", "kill", "-s", "KILL", container])
        print(f"replicas: docker kill -s KILL {KILLED} with {BURST} large requests in flight over the replicas")
        await asyncio.sleep(settle_s)
        after = await balancer_stat(project)
        status = after[KILLED]["status"]
        print(
            f"replicas: the balancer marked {KILLED} {status} and retried {retried(after, KILLED) - retried(before, KILLED)} requests that failed on it"
        )

        load.phase = "restore"
        marks.append((load.phase, time.perf_counter()))
        await run(["bash", "scripts/roll-replicas.sh", KILLED], {"REPLICAS_PROJECT": project}, capture=False)
        await asyncio.sleep(settle_s)
        load.stopping.set()
        await sending
        marks.append(("end", time.perf_counter()))

    durations = {phase: end - begin for (phase, begin), (_, end) in zip(marks, marks[1:], strict=False)}
    total = Tally()
    print(f"replicas: {HEADER} {'s':>5}")
    for phase, tally in load.tallies.items():
        print(f"replicas: {tally.line(phase)} {durations[phase]:>5.0f}")
        total.add(tally)
    print(f"replicas: {total.line('total')} {marks[-1][1] - marks[0][1]:>5.0f}")
    stat = await balancer_stat(project)
    backend = stat["BACKEND"]
    print(
        f"replicas: the balancer counted {backend['wretr'] or 0} retries and {backend['wredis'] or 0} redispatches in all"
    )
    for problem, count in total.problems.most_common(10):
        print(f"replicas:   {count} x {problem}")
    if status == "UP":
        print(f"replicas: the balancer still sent to {KILLED} {settle_s:g} s after it was killed")
    return total.clean() and status != "UP"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the balancer")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--project", default="vae-replicas", help="compose project of docker-compose.replicas.yml")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds of load between the steps")
    args = parser.parse_args()
    clean = asyncio.run(exercise(args.url, args.rate, args.project, args.settle))
    print("replicas: passed" if clean else "replicas: FAILED")
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
