"""The scenarios of issue 6, run against real service processes in one run.

Layout on a 2-core machine: the service (and the compute-ceiling subprocess) on CPU 1, this
process (the load generator) on CPU 0. Two services run side by side on CPU 1: batching on (the
defaults) and batching off (VAE_MAX_BATCH_SIZE=1); their scenarios are interleaved so slow drift
in background load hits both alike. Only the one under load uses the core at any time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import traffic
from bench.loadgen import LoadResult, Traffic, closed_loop, merge, open_loop
from bench.server import BatchStats, BenchServer, ResourceWatch, pin
from devtools.images import digit_png_bytes
from devtools.live import MODELS_DIR

REPO_ROOT = Path(__file__).resolve().parent.parent
DECODE_CONCURRENCY = (1, 8, 32, 64)  # /ping runs at each of these too
UPLOAD_CONCURRENCY = (1, 32)
SAMPLE_N = (1, 16, 256)
SAMPLE_CONCURRENCY = 8  # one of DECODE_CONCURRENCY, so /ping at the same concurrency exists
OPEN_LOOP_LOAD = (0.5, 0.8)  # fractions of /decode's closed-loop c=64 throughput
BATCHING_OFF = {"VAE_MAX_BATCH_SIZE": "1"}
UNPINNED = "batching on, all cores"
ROUNDS = 3  # /ping, /decode on and /decode off take turns this many times per concurrency
ROUND_CEILING_S = 0.25  # timed seconds per batch size of the decoder ceiling taken between /sample rounds


@dataclass
class Scenario:
    group: str  # "http ceiling", "sample", "decode", "upload", "open loop"
    name: str  # traffic name
    server: str  # "batching on" / "batching off"
    graph: str | None  # graph whose batches /metrics reports, None for /ping
    rows: int  # images per request
    load: LoadResult
    mean_batch: float
    cpu_percent: float
    client_cpu_percent: float
    peak_rss: int
    bound: str = ""  # "HTTP" or "compute"
    bound_rps: float = float("nan")
    fraction: float = float("nan")
    round_rps: list[float] = field(default_factory=list)  # req/s in each interleaved round
    # Service CPU per response in the window (any status), from per-thread CPU times: the event-loop
    # thread (HTTP, validation, encoding) and every thread (adds inference on the batch workers).
    loop_cpu_us: float = float("nan")
    cpu_us: float = float("nan")
    # Decoder images/s per batch size, measured in-process before each of this scenario's rounds
    # (mean over the rounds), for scenarios whose bound is compute: drift hits both alike.
    round_ceiling: dict[str, float] | None = None

    @property
    def label(self) -> str:
        if self.load.mode == "open":
            return f"open {self.load.rate:.0f}/s"
        return f"c={self.load.concurrency}"


@dataclass
class Suite:
    duration_s: float
    warmup_s: float
    server_cpus: set[int] | None
    client_cpus: set[int] | None
    scenarios: list[Scenario] = field(default_factory=list)
    ceiling: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    finished_at: float = 0.0
    load_average: tuple[tuple[float, float, float], ...] = ()
    model: dict = field(default_factory=dict)


def default_model_dir(models_dir: Path, name: str) -> Path:
    """The folder whose model.json names `name` (folder names need not match)."""
    for card in sorted(models_dir.glob("*/model.json")):
        if json.loads(card.read_text()).get("name") == name:
            return card.parent
    raise FileNotFoundError(f"no model named {name!r} under {models_dir}")


def cpu_layout() -> tuple[set[int] | None, set[int] | None]:
    """(server, client) cores: the last core for the server, the rest for the client."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def compute_ceiling(
    model_dir: Path,
    server_cpus: set[int] | None,
    seconds: float,
    graphs: str = "decoder,encoder",
    batches: str = "1,16,64,256",
) -> dict:
    command = [
        sys.executable,
        "-m",
        "bench.ceiling",
        "--model-dir",
        str(model_dir),
        "--seconds",
        str(seconds),
        "--graphs",
        graphs,
        "--batches",
        batches,
    ]
    if server_cpus:
        command += ["--cpu", str(min(server_cpus))]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def best_of(first: dict, second: dict) -> dict:
    """Per graph and batch size, the faster of two measurements (start and end of the run): the
    ceiling a scenario is compared with is then the higher, stricter one."""
    best = dict(second)
    best["graphs"] = {
        graph: {size: max(value, first["graphs"][graph][size]) for size, value in sizes.items()}
        for graph, sizes in second["graphs"].items()
    }
    best["measurements"] = [first["graphs"], second["graphs"]]
    return best


Run = tuple[str, BenchServer, Traffic, str | None]  # group, server, traffic, graph whose batches to read


def run_scenarios(
    suite: Suite,
    runs: list[Run],
    *,
    concurrency: int | None = None,
    rate: float | None = None,
    rounds: int = 1,
    ceiling: Callable[[], dict[str, float]] | None = None,
) -> list[Scenario]:
    """One scenario per run; with rounds > 1 they take turns (A B C, C B A, A B C) in
    duration/rounds slices, merged, so drift in background load favours none of them.
    `ceiling`: measures the compute ceiling (images/s per batch size) before each round."""
    parts: list[list[tuple[LoadResult, ResourceWatch]]] = [[] for _ in runs]
    ceilings: list[dict[str, float]] = []
    # Batch statistics per slice: runs that share a server (the /sample pairs) must not mix.
    batches = [BatchStats() for _ in runs]
    slice_s = suite.duration_s / rounds
    awake = bool(suite.client_cpus)  # a client on cores of its own polls (bench/loadgen.py)
    for round_index in range(rounds):
        if ceiling is not None:
            ceilings.append(ceiling())
        order = range(len(runs)) if round_index % 2 == 0 else reversed(range(len(runs)))
        for index in order:
            _, server, load, graph = runs[index]
            before = server.batch_stats(graph) if graph else None
            with ResourceWatch(server) as watch:
                if rate is None:
                    result = closed_loop(
                        server.port, load, concurrency, slice_s, suite.warmup_s, hook=watch.mark, keep_awake=awake
                    )
                else:
                    result = open_loop(
                        server.port, load, rate, slice_s, suite.warmup_s, hook=watch.mark, keep_awake=awake
                    )
            if graph:
                batches[index] = batches[index] + (server.batch_stats(graph) - before)
            parts[index].append((result, watch))
    scenarios = []
    for (group, server, load, graph), stats, results in zip(runs, batches, parts, strict=True):
        mean_batch = stats.mean_rows if graph else float("nan")
        windows = [r.window_s for r, _ in results]

        def weighted(values: list[float], windows: list[float] = windows) -> float:
            return sum(v * w for v, w in zip(values, windows, strict=True)) / sum(windows)

        result = merge([r for r, _ in results])
        responses = sum(r.completed for r, _ in results) or float("nan")
        scenario = Scenario(
            group,
            load.name,
            server.label,
            graph,
            load.images,
            result,
            mean_batch,
            weighted([w.cpu_percent for _, w in results]),
            weighted([w.client_cpu_percent for _, w in results]),
            max(w.peak_rss for _, w in results),
            round_rps=[r.requests_per_s for r, _ in results],
            loop_cpu_us=1e6 * sum(w.loop_cpu_s for _, w in results) / responses,
            cpu_us=1e6 * sum(w.threads_cpu_s for _, w in results) / responses,
            round_ceiling={size: sum(c[size] for c in ceilings) / len(ceilings) for size in ceilings[0]}
            if ceilings
            else None,
        )
        suite.scenarios.append(scenario)
        scenarios.append(scenario)
        print(
            f"  {server.label:13s} {load.name:24s} {scenario.label:13s} {result.requests_per_s:9.1f} req/s "
            f"p50 {result.percentile_ms(50):7.2f} ms  p99 {result.percentile_ms(99):7.2f} ms  "
            f"server CPU {scenario.cpu_percent:4.0f}%  errors {result.errors or '-'}",
            flush=True,
        )
    return scenarios


def run_scenario(suite: Suite, server: BenchServer, group: str, load: Traffic, graph: str | None, **kwargs) -> Scenario:
    return run_scenarios(suite, [(group, server, load, graph)], **kwargs)[0]


def run_quick(
    duration_s: float = 3.0, warmup_s: float = 0.5, ceiling_s: float = 0.6, models_dir: Path = MODELS_DIR
) -> Suite:
    server_cpus, client_cpus = cpu_layout()
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    suite = Suite(duration_s, warmup_s, server_cpus, client_cpus)
    suite.load_average = (os.getloadavg(),)
    print(f"server on CPU {server_cpus}, load generator on CPU {client_cpus}", flush=True)
    batching_on = BenchServer("batching on", {}, server_cpus, models_dir)
    batching_off = BenchServer("batching off", BATCHING_OFF, server_cpus, models_dir)
    try:
        info = batching_on.get("/models").json()
        name = info["default"]
        model = next(m for m in info["models"] if m["name"] == name)
        latent_dim = model["card"]["latent_dim"]
        suite.model = {
            "name": name,
            "version": model["card"]["version"],
            "latent_dim": latent_dim,
            "provider": model["provider"],
            "loaded": [m["name"] for m in info["models"]],
        }
        suite.memory = {"ready_rss": batching_on.ready_rss, "ready_rss_off": batching_off.ready_rss}

        print("compute ceiling (onnxruntime in-process, server's core)", flush=True)
        model_dir = default_model_dir(models_dir, name)
        first_ceiling = compute_ceiling(model_dir, server_cpus, ceiling_s)

        print("scenarios", flush=True)
        # /ping (the HTTP ceiling) and /decode with batching on and off take turns at each concurrency.
        decode_c64 = None
        for c in DECODE_CONCURRENCY:
            _, on, _ = run_scenarios(
                suite,
                [
                    ("http ceiling", batching_on, traffic.ping(batching_on.port), None),
                    ("decode", batching_on, traffic.decode(batching_on.port, latent_dim), "decoder"),
                    ("decode", batching_off, traffic.decode(batching_off.port, latent_dim), "decoder"),
                ],
                concurrency=c,
                rounds=ROUNDS,
            )
            if c == 64:
                decode_c64 = on.load.requests_per_s

        def decoder_ceiling() -> dict[str, float]:
            return compute_ceiling(model_dir, server_cpus, ROUND_CEILING_S, "decoder")["graphs"]["decoder"]

        for n in SAMPLE_N:
            # PNG and npy take turns: a single 3-s run of ~170 big requests moved by 20% between runs.
            # Their bound is compute, so the ceiling is measured between their rounds too.
            run_scenarios(
                suite,
                [
                    ("sample", batching_on, traffic.sample(batching_on.port, n, fmt), "decoder")
                    for fmt in ("png", "npy")
                ],
                concurrency=SAMPLE_CONCURRENCY,
                rounds=ROUNDS,
                ceiling=decoder_ceiling,
            )
        if server_cpus:
            # The same pair with the service free to use every core (the load generator stays on its
            # own): how a deployment runs it, with onnxruntime off the event loop's core.
            every_cpu = server_cpus | client_cpus
            pin(batching_on.server.pid, every_cpu)
            batching_on.label = UNPINNED
            try:
                run_scenarios(
                    suite,
                    [
                        ("http ceiling", batching_on, traffic.ping(batching_on.port), None),
                        ("decode", batching_on, traffic.decode(batching_on.port, latent_dim), "decoder"),
                    ],
                    concurrency=64,
                    rounds=ROUNDS,
                )
            finally:
                pin(batching_on.server.pid, server_cpus)
                batching_on.label = "batching on"
        pngs = [digit_png_bytes(index) for index in range(16)]
        for endpoint, graph in (("/encode", "encoder"), ("/reconstruct", "decoder")):
            for c in UPLOAD_CONCURRENCY:
                run_scenario(
                    suite, batching_on, "upload", traffic.upload(batching_on.port, endpoint, pngs), graph, concurrency=c
                )
        for share in OPEN_LOOP_LOAD:
            rate = max(10.0, round((decode_c64 or 100.0) * share, -1))
            run_scenario(
                suite, batching_on, "open loop", traffic.decode(batching_on.port, latent_dim), "decoder", rate=rate
            )
        print("compute ceiling again", flush=True)
        suite.ceiling = best_of(first_ceiling, compute_ceiling(model_dir, server_cpus, ceiling_s))
        suite.memory["peak_rss"] = max(s.peak_rss for s in suite.scenarios if s.server == "batching on")
        suite.memory["end_rss"] = batching_on.rss()
    finally:
        batching_on.stop()
        batching_off.stop()
    suite.load_average += (os.getloadavg(),)
    suite.finished_at = time.time()
    attach_ceilings(suite)
    return suite


def _ceiling_images_per_s(ceiling: dict, graph: str, batch: int) -> float:
    """In-process images/s at the largest measured batch size not above `batch`."""
    per_batch = ceiling["graphs"][graph]
    sizes = sorted(int(size) for size in per_batch)
    usable = [size for size in sizes if size <= max(1, batch)] or sizes[:1]
    return per_batch[str(usable[-1])]


def attach_ceilings(suite: Suite) -> None:
    """Each scenario as a fraction of the ceiling that bounds it: /ping at the same concurrency
    (HTTP) or onnxruntime in-process at the largest batch the scenario can form (compute)."""
    pinned = [s for s in suite.scenarios if s.group == "http ceiling" and s.server != UNPINNED]
    ping = {s.load.concurrency: s.load.requests_per_s for s in pinned}
    unpinned = {
        s.load.concurrency: s.load.requests_per_s
        for s in suite.scenarios
        if s.group == "http ceiling" and s.server == UNPINNED
    }
    best_ping = max(ping.values(), default=float("nan"))
    for s in suite.scenarios:
        if s.group == "http ceiling":
            continue
        if s.server == UNPINNED:
            s.bound, s.bound_rps = "HTTP", unpinned.get(s.load.concurrency, float("nan"))
            s.fraction = s.load.requests_per_s / s.bound_rps
            continue
        http_rps = ping.get(s.load.concurrency, best_ping) if s.load.mode == "closed" else best_ping
        max_batch = 1 if s.server == "batching off" else 256
        batch = min(max_batch, s.rows * (s.load.concurrency or 1))
        if s.round_ceiling is not None:
            images_per_s = _ceiling_images_per_s({"graphs": {"decoder": s.round_ceiling}}, "decoder", batch)
        elif s.name.startswith("/encode"):
            images_per_s = _ceiling_images_per_s(suite.ceiling, "encoder", batch)
        elif s.name.startswith("/reconstruct"):
            encode = _ceiling_images_per_s(suite.ceiling, "encoder", batch)
            decode = _ceiling_images_per_s(suite.ceiling, "decoder", batch)
            images_per_s = 1.0 / (1.0 / encode + 1.0 / decode)
        else:
            images_per_s = _ceiling_images_per_s(suite.ceiling, "decoder", batch)
        compute_rps = images_per_s / max(1, s.rows)
        if compute_rps < http_rps:
            s.bound, s.bound_rps = "compute", compute_rps
        else:
            s.bound, s.bound_rps = "HTTP", http_rps
        s.fraction = s.load.requests_per_s / s.bound_rps if s.bound_rps else float("nan")
