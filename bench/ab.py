"""`python -m bench.ab REV [OTHER]`: an interleaved A/B of the service at two git revisions.

Measuring a change on a shared, noisy machine: runs of one build differ by 10-20% from one minute
to the next, so a before/after pair taken minutes apart cannot show a 5% change. This starts both
builds side by side (REV from a temporary `git worktree`, OTHER likewise or, by default, this
checkout with its uncommitted edits), pins both to the service's core, and lets /ping and one
workload take turns on each (A B C D, D C B A, ...), so background drift hits all of them alike.

Printed per build: req/s, the workload as a fraction of /ping on the same build, and service CPU
per request from per-thread CPU times: the event-loop thread, and every thread (adds inference on
the batch workers). Even so, two processes of one build differed here by up to 25% in /ping req/s
while taking turns, so the whole comparison repeats with fresh processes (--repeat, default 3)
and ends with each build's medians.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench import traffic
from bench.loadgen import Traffic
from bench.server import BenchServer, pin
from bench.suite import Scenario, Suite, cpu_layout, run_scenarios
from devtools.images import digit_png_bytes

REPO_ROOT = Path(__file__).resolve().parent.parent

WORKLOADS = ("decode", "decode-npy", "sample", "encode", "reconstruct")


def workload(name: str, port: int, latent_dim: int) -> tuple[Traffic, str]:
    """(traffic, graph whose batches /metrics reports) for one named workload."""
    if name == "decode":
        return traffic.decode(port, latent_dim), "decoder"
    if name == "decode-npy":  # JSON latents in, .npy out: issue 17's comparison with the peers
        return traffic.latents(port, "/decode?format=npy", latent_dim, name="/decode n=1 json -> npy"), "decoder"
    if name == "sample":
        return traffic.sample(port, 1, "png"), "decoder"
    pngs = [digit_png_bytes(index) for index in range(16)]
    return traffic.upload(port, f"/{name}", pngs), "encoder" if name == "encode" else "decoder"


@contextlib.contextmanager
def checkout(rev: str | None) -> Iterator[Path]:
    """This checkout for None, else a detached worktree of `rev`, removed afterwards."""
    if rev is None:
        yield REPO_ROOT
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    if commit.returncode != 0:
        raise SystemExit(f"bench.ab: {rev!r} is not a commit in {REPO_ROOT}")
    path = Path(tempfile.mkdtemp(prefix="vae-ab-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(path), commit.stdout.strip()], cwd=REPO_ROOT, check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO_ROOT, check=False)


def _row(ping: Scenario, work: Scenario) -> list[float]:
    ratio = work.load.requests_per_s / ping.load.requests_per_s if ping.load.requests_per_s else float("nan")
    return [
        ping.load.requests_per_s,
        work.load.requests_per_s,
        ratio,
        ping.loop_cpu_us,
        work.loop_cpu_us,
        work.cpu_us,
        work.mean_batch,
    ]


def table(repeats: list[dict[str, tuple[Scenario, Scenario]]]) -> str:
    """One row per build and repeat, then (with several repeats) each build's medians."""
    lines = [
        "| build | run | /ping req/s | workload req/s | of /ping | event loop us/req: /ping | workload "
        "| all threads us/req: workload | mean batch rows |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]

    def line(label: str, run: str, row: list[float]) -> str:
        ping_rps, work_rps, ratio, ping_loop, work_loop, work_cpu, batch = row
        return (
            f"| {label} | {run} | {ping_rps:,.0f} | {work_rps:,.0f} | {ratio:.0%} | {ping_loop:,.0f} | {work_loop:,.0f} "
            f"| {work_cpu:,.0f} | {batch:.1f} |"
        )

    rows: dict[str, list[list[float]]] = {}
    for index, results in enumerate(repeats, 1):
        for label, (ping, work) in results.items():
            rows.setdefault(label, []).append(_row(ping, work))
            lines.append(line(label, str(index), rows[label][-1]))
    if len(repeats) > 1:
        for label, values in rows.items():
            lines.append(
                line(f"**{label}**", "median", [statistics.median(column) for column in zip(*values, strict=True)])
            )
    workload_name = next(iter(repeats[0].values()))[1].name
    return f"workload: {workload_name}\n\n" + "\n".join(lines)


def compare(
    revisions: list[str | None],
    *,
    name: str = "decode",
    concurrency: int = 64,
    duration_s: float = 6.0,
    rounds: int = 3,
    warmup_s: float = 0.5,
    all_cores: bool = False,
    other_env: dict[str, str] | None = None,
) -> dict[str, tuple[Scenario, Scenario]]:
    server_cpus, client_cpus = cpu_layout()
    caller_cpus = os.sched_getaffinity(0)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    service_cpus = (server_cpus | client_cpus) if (all_cores and server_cpus) else server_cpus
    suite = Suite(duration_s, warmup_s, server_cpus, client_cpus)
    envs = [{}, other_env or {}]
    labels = [rev or "this checkout" for rev in revisions]
    labels[1] += "".join(f" {key}={value}" for key, value in envs[1].items())
    with contextlib.ExitStack() as stack:
        # The caller (a test session, say) gets its cores back, and so do services it starts later.
        stack.callback(os.sched_setaffinity, 0, caller_cpus)
        servers = []
        for label, rev, env in zip(labels, revisions, envs, strict=True):
            repo = stack.enter_context(checkout(rev))
            server = BenchServer(label, env, server_cpus, repo / "models", repo)
            stack.callback(server.stop)
            pin(server.server.pid, service_cpus)
            servers.append(server)
        runs = []
        for server in servers:
            info = server.get("/models").json()
            latent_dim = next(m for m in info["models"] if m["name"] == info["default"])["card"]["latent_dim"]
            load, graph = workload(name, server.port, latent_dim)
            runs += [("http ceiling", server, traffic.ping(server.port), None), ("ab", server, load, graph)]
        scenarios = run_scenarios(suite, runs, concurrency=concurrency, rounds=rounds)
    return {label: (scenarios[2 * i], scenarios[2 * i + 1]) for i, label in enumerate(labels)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rev", help="git revision to compare (a commit, branch or tag)")
    parser.add_argument("other", nargs="?", help="the second revision (default: this checkout, edits included)")
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="decode",
        help="decode: one JSON latent row; sample: n=1 PNG; encode/reconstruct: one digit PNG",
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per scenario, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--all-cores", action="store_true", help="let both services use every core (default: pinned)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="fresh service processes this many times, medians at the end (default 3): two processes "
        "of one build can differ by 20%% in /ping here, even taking turns",
    )
    parser.add_argument(
        "--other-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the second build only (repeatable): `HEAD --other-env VAE_ENGINE_WORKERS=0` "
        "compares two configurations of one commit",
    )
    args = parser.parse_args(argv)
    if bad := [item for item in args.other_env if "=" not in item]:
        parser.error(f"--other-env takes KEY=VALUE, not {bad[0]!r}")
    other_env = dict(item.split("=", 1) for item in args.other_env)
    repeats = []
    for index in range(args.repeat):
        print(f"repeat {index + 1} of {args.repeat}", flush=True)
        repeats.append(
            compare(
                [args.rev, args.other],
                name=args.workload,
                concurrency=args.concurrency,
                duration_s=args.duration,
                rounds=args.rounds,
                all_cores=args.all_cores,
                other_env=other_env,
            )
        )
    print()
    print(table(repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
