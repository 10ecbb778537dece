"""The benchmark's own machinery works: a short load against the live service, then the report.

Runs in about 3 seconds; the numbers are not checked (any machine passes), only that requests
were counted, statuses classified, batch sizes read from /metrics and the table written.
"""

from __future__ import annotations

import asyncio
import math
import time

import httpx
import numpy as np

from bench import report, traffic
from bench.loadgen import LoadResult, _run, closed_loop, open_loop
from bench.server import ResourceWatch, batch_stats
from bench.suite import Scenario, Suite, attach_ceilings, run_scenarios


class _LiveServer:
    """The parts of bench.server.BenchServer that ResourceWatch needs, around tests' live_server."""

    label = "batching on"

    def __init__(self, live_server) -> None:
        import psutil

        self.process = psutil.Process(live_server.pid)
        self.port = int(live_server.base_url.rsplit(":", 1)[1])
        self.base_url = live_server.base_url

    def rss(self) -> int:
        return self.process.memory_info().rss

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def latent_dim(self) -> int:
        info = httpx.get(f"{self.base_url}/models").json()
        return next(m for m in info["models"] if m["name"] == info["default"])["card"]["latent_dim"]


def _scenario(server: _LiveServer, group: str, load, rows: int, watch: ResourceWatch) -> Scenario:
    return Scenario(
        group,
        "x",
        server.label,
        None,
        rows,
        load,
        float("nan"),
        watch.cpu_percent,
        watch.client_cpu_percent,
        watch.peak_rss,
        loop_cpu_us=1e6 * watch.loop_cpu_s / load.completed,
        cpu_us=1e6 * watch.threads_cpu_s / load.completed,
    )


def test_closed_and_open_loop_count_requests_statuses_and_images(live_server):
    server = _LiveServer(live_server)
    with ResourceWatch(server) as watch:
        ping = closed_loop(server.port, traffic.ping(server.port), 4, duration_s=0.5, warmup_s=0.1, hook=watch.mark)
    assert ping.ok > 20 and ping.errors == {}
    assert ping.percentile_ms(50) <= ping.percentile_ms(99)
    assert watch.cpu_percent > 0 and watch.peak_rss > 10 * 2**20

    latent_dim = server.latent_dim()
    decode = open_loop(server.port, traffic.decode(server.port, latent_dim), rate=100, duration_s=0.5, warmup_s=0.1)
    assert decode.mode == "open" and 35 <= decode.ok <= 65 and decode.errors == {}
    assert decode.images == decode.ok  # one image per /decode n=1

    sample = closed_loop(server.port, traffic.sample(server.port, 16, "npy"), 2, duration_s=0.3, warmup_s=0.0)
    assert sample.ok > 0 and sample.images == 16 * sample.ok


def test_keep_awake_polls_through_a_wait_and_still_counts_every_answer(live_server):
    server = _LiveServer(live_server)
    for keep_awake, busy in ((False, False), (True, True)):
        started = time.process_time()
        _run(asyncio.sleep(0.3), keep_awake)
        spent = time.process_time() - started
        assert (spent > 0.1) is busy, f"keep_awake={keep_awake}: {spent:.3f} s of CPU in a 0.3 s wait"
    ping = closed_loop(server.port, traffic.ping(server.port), 2, duration_s=0.3, warmup_s=0.0, keep_awake=True)
    assert ping.ok > 10 and ping.errors == {} and ping.completed == ping.ok
    decode = open_loop(server.port, traffic.decode(server.port, server.latent_dim()), 100, 0.4, 0.0, keep_awake=True)
    assert 25 <= decode.ok <= 55 and decode.errors == {}


def test_errors_are_counted_by_status(live_server):
    server = _LiveServer(live_server)
    wrong = traffic.Traffic("bad latents", (traffic.decode(server.port, 3).requests[0],), images=1)
    result = closed_loop(server.port, wrong, 2, duration_s=0.3, warmup_s=0.0)
    assert result.ok == 0 and set(result.errors) == {"422"}


def test_uploads_and_batch_stats_from_metrics(live_server):
    from devtools.images import digit_png_bytes

    server = _LiveServer(live_server)
    before = batch_stats(httpx.get(f"{server.base_url}/metrics").text, "encoder")
    load = traffic.upload(server.port, "/reconstruct", [digit_png_bytes(0)])
    result = closed_loop(server.port, load, 2, duration_s=0.3, warmup_s=0.0)
    assert result.ok > 0 and result.errors == {}
    delta = batch_stats(httpx.get(f"{server.base_url}/metrics").text, "encoder") - before
    assert delta.rows >= result.ok and 1.0 <= delta.mean_rows <= 2.0  # two connections: batches of 1 or 2


def test_report_renders_a_table_and_a_plot(live_server, tmp_path):
    server = _LiveServer(live_server)
    suite = Suite(duration_s=0.3, warmup_s=0.0, server_cpus=None, client_cpus=None)
    suite.ceiling = {"intra_op_threads": 1, "graphs": {g: {"1": 1000.0, "256": 5000.0} for g in ("decoder", "encoder")}}
    suite.memory = {
        "ready_rss": 100 * 2**20,
        "ready_rss_off": 100 * 2**20,
        "peak_rss": 110 * 2**20,
        "end_rss": 105 * 2**20,
    }
    suite.model = {"name": "mnist", "loaded": ["mnist"]}
    with ResourceWatch(server) as watch:
        ping = closed_loop(server.port, traffic.ping(server.port), 2, 0.3, 0.0, hook=watch.mark)
    suite.scenarios.append(_scenario(server, "http ceiling", ping, 0, watch))
    suite.scenarios[-1].name = "/ping"
    with ResourceWatch(server) as watch:
        decode = closed_loop(
            server.port, traffic.decode(server.port, server.latent_dim()), 2, 0.3, 0.0, hook=watch.mark
        )
    suite.scenarios.append(_scenario(server, "decode", decode, 1, watch))
    suite.scenarios[-1].name = "/decode n=1 json"
    suite.finished_at = suite.started_at + 1
    attach_ceilings(suite)
    text = report.markdown(suite)
    assert "| /decode n=1 json | on | c=2 |" in text
    assert "% of HTTP |" in text or "% of compute |" in text
    assert not math.isnan(suite.scenarios[-1].fraction)
    # Per-thread CPU: the event loop did work for every request; with more than one core /decode's
    # inference ran on another thread (the batch worker), so all threads together cost more.
    decoded = suite.scenarios[-1]
    assert 0 < decoded.loop_cpu_us <= decoded.cpu_us
    if len(server.process.cpu_affinity()) > 1:
        assert decoded.loop_cpu_us < decoded.cpu_us
    assert "| /decode n=1 json | on | " in report.cpu_table(suite, concurrency=2)
    report.plot(suite, tmp_path / "throughput.png")
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"


def test_decode_bound_is_computed_from_the_runs_own_cpu_figures():
    suite = Suite(duration_s=3, warmup_s=0, server_cpus=None, client_cpus=None)
    suite.ceiling = {"graphs": {"decoder": {"1": 8000.0, "64": 20000.0, "256": 19000.0}}}
    ping, decode = _decode_scenario("batching on", 64, [5000]), _decode_scenario("batching on", 64, [2500])
    ping.name, ping.group = "/ping", "http ceiling"
    ping.loop_cpu_us, ping.cpu_us = 200.0, 200.0
    decode.loop_cpu_us, decode.cpu_us = 300.0, 400.0
    suite.scenarios = [ping, decode]
    text = "\n".join(report.decode_bound(suite))
    # Best decoder row: 1e6 / 20000 = 50 us. Bound 200 / (200 + 50) = 80%; 70% allows 200 / 0.7 =
    # 286 us in all, 36 us beyond /ping and inference; measured 400 - 200 - 50 = 150 us.
    assert "50 us per row (onnxruntime in-process, batch 64)" in text
    assert "**80% of /ping**" in text
    assert "286 us in all, which leaves 36 us" in text and "it measured 150 us" in text
    assert "inference on the batch workers took 100 us" in text


def _decode_scenario(server: str, concurrency: int, rounds: list[float]) -> Scenario:
    window = 1.0
    load = LoadResult(
        "closed", concurrency, None, window * len(rounds), np.full(10, 0.001), ok=int(sum(r * window for r in rounds))
    )
    return Scenario("decode", "/decode n=1 json", server, "decoder", 1, load, 1.0, 100.0, 10.0, 0, round_rps=rounds)


def _batching_target(on_rounds: list[float], off_rounds: list[float]) -> report.Target:
    suite = Suite(duration_s=3, warmup_s=0, server_cpus=None, client_cpus=None)
    suite.scenarios = [_decode_scenario("batching on", 1, on_rounds), _decode_scenario("batching off", 1, off_rounds)]
    return next(t for t in report.targets(suite) if t.name.startswith("batching on never loses"))


def test_batching_loses_only_when_slower_overall_and_in_every_round():
    assert not _batching_target([900, 920, 910], [1000, 1010, 1000]).met  # 9% slower in every round
    noisy = _batching_target([900, 1050, 800], [1000, 1000, 1000])  # 8% slower overall, faster in one round
    assert noisy.met and "noise" in noisy.got
    assert _batching_target([990, 985, 995], [1000, 1000, 1000]).met  # within the 3% tie band
    assert _batching_target([1300, 1310, 1290], [1000, 1000, 1000]).met


def test_a_compute_bound_scenario_is_compared_with_the_ceiling_measured_between_its_rounds(live_server):
    server = _LiveServer(live_server)
    suite = Suite(duration_s=0.4, warmup_s=0.0, server_cpus=None, client_cpus=None)
    suite.ceiling = {"intra_op_threads": 1, "graphs": {g: {"1": 1e9, "256": 1e9} for g in ("decoder", "encoder")}}
    measured = iter([{"1": 100.0, "256": 300.0}, {"1": 200.0, "256": 500.0}])
    (scenario,) = run_scenarios(
        suite,
        [("sample", server, traffic.sample(server.port, 256, "npy"), None)],
        concurrency=1,
        rounds=2,
        ceiling=lambda: next(measured),
    )
    assert scenario.round_ceiling == {"1": 150.0, "256": 400.0}  # the mean of the two rounds
    ping = _decode_scenario("batching on", 1, [1e6])  # an HTTP ceiling far above the compute one
    ping.name, ping.group = "/ping", "http ceiling"
    suite.scenarios.append(ping)
    attach_ceilings(suite)
    assert scenario.bound == "compute" and scenario.bound_rps == 400.0 / 256  # not the start/end 1e9
    scenario.name = "/sample n=256 npy"
    target = next(t for t in report.targets(suite) if t.name.startswith("/sample n=256 npy"))
    assert "of 400 images/s, ceiling measured between its rounds" in target.got
    assert "| decoder, between the /sample n=256 rounds (mean) | 150 | 400 |" in report.ceiling_table(suite)
