"""Results -> markdown (the table README quotes), the targets of issue 6, and the throughput plot."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.suite import UNPINNED, Scenario, Suite

MB = 1024 * 1024
# At one connection batching on and off run the same code (batches of one row), so their req/s
# differ only by noise: two identical services differed by 2-9% at one connection here (A/A check).
# So batching "loses" only when it is more than TIE slower overall and slower in every one of the
# interleaved rounds; a difference that changes sign between rounds is noise.
TIE = 0.03


@dataclass
class Target:
    name: str
    wanted: str
    got: str
    met: bool


def _fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / (1024**3)
    import onnxruntime

    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; onnxruntime {onnxruntime.__version__}"
    )


def git_commit(repo: Path | None = None) -> str:
    """HEAD's short hash, with " + edits" when tracked files outside bench/results differ from it:
    a figure measured on uncommitted code (or on a copy whose .git is older) must not name HEAD alone."""
    cwd = repo or Path(__file__).parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=cwd, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results"],
            capture_output=True,
            text=True,
            cwd=cwd,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + edits" if changed else head


def _find(
    suite: Suite, name_prefix: str, server: str = "batching on", concurrency: int | None = None
) -> Scenario | None:
    for s in suite.scenarios:
        if s.name.startswith(name_prefix) and s.server == server and s.load.mode == "closed":
            if concurrency is None or s.load.concurrency == concurrency:
                return s
    return None


def targets(suite: Suite) -> list[Target]:
    found: list[Target] = []
    sample = _find(suite, "/sample n=256 npy")
    if sample:
        if sample.round_ceiling:  # measured between the scenario's own rounds
            ceiling, when = sample.round_ceiling["256"], "ceiling measured between its rounds"
        else:
            ceiling, when = suite.ceiling["graphs"]["decoder"]["256"], "ceiling at the start and end of the run"
        ratio = sample.load.images_per_s / ceiling
        found.append(
            Target(
                "/sample n=256 npy vs compute ceiling (batch 256)",
                ">= 70%",
                f"{ratio:.0%} ({sample.load.images_per_s:,.0f} of {ceiling:,.0f} images/s, {when})",
                ratio >= 0.70,
            )
        )
    decode = _find(suite, "/decode", concurrency=64)
    ping = _find(suite, "/ping", concurrency=64)
    if decode and ping:
        ratio = decode.load.requests_per_s / ping.load.requests_per_s
        found.append(
            Target(
                "/decode n=1 c=64 vs HTTP ceiling (/ping c=64)",
                ">= 70%",
                f"{ratio:.0%} ({decode.load.requests_per_s:,.0f} of {ping.load.requests_per_s:,.0f} req/s)",
                ratio >= 0.70,
            )
        )
    decode, ping = _find(suite, "/decode", UNPINNED, 64), _find(suite, "/ping", UNPINNED, 64)
    if decode and ping:
        ratio = decode.load.requests_per_s / ping.load.requests_per_s
        found.append(
            Target(
                "(informative) the same with the service on every core, load generator still on its own",
                ">= 70%",
                f"{ratio:.0%} ({decode.load.requests_per_s:,.0f} of {ping.load.requests_per_s:,.0f} req/s)",
                ratio >= 0.70,
            )
        )
    gains = []
    for on in (s for s in suite.scenarios if s.server == "batching on" and s.group == "decode"):
        off = _find(suite, on.name, "batching off", on.load.concurrency)
        if off and off.load.requests_per_s:
            rounds = [a / b for a, b in zip(on.round_rps, off.round_rps, strict=False) if b]
            gains.append((on.load.concurrency, on.load.requests_per_s / off.load.requests_per_s, rounds))
    if gains:
        c64 = next((g for c, g, _ in gains if c == 64), None)
        listed, lost = [], False
        for c, g, rounds in gains:
            note = ""
            if g < 1 - TIE and rounds and min(rounds) < 1 <= max(rounds):
                note = f" (noise: on faster in {sum(r >= 1 for r in rounds)} of {len(rounds)} rounds)"
            elif g < 1 - TIE:
                lost = True
            elif g < 1:
                note = " (tie)"
            listed.append(f"c={c}: {g:.2f}x{note}")
        text = ", ".join(listed)
        found.append(
            Target(
                "batching on never loses to off (/decode n=1, on/off req/s)",
                f">= 1.00x at every concurrency; within {TIE:.0%}, or slower in only some interleaved rounds, is a tie",
                f"{text}; gain at c=64: {c64:.2f}x" if c64 else text,
                not lost,
            )
        )
    for s in suite.scenarios:
        if s.server == "batching on" and s.load.mode == "closed" and s.load.concurrency == 32:
            p50, p99 = s.load.percentile_ms(50), s.load.percentile_ms(99)
            found.append(
                Target(
                    f"p99 <= 3x p50 at c=32: {s.name}",
                    "<= 3.0x",
                    f"{p99 / p50:.2f}x ({p50:.2f} / {p99:.2f} ms)",
                    p99 <= 3 * p50,
                )
            )
    rss = suite.memory.get("ready_rss")
    if rss:
        loaded = ", ".join(suite.model.get("loaded", []))
        found.append(
            Target(
                f"service RSS with every model loaded ({loaded}), at ready",
                "< 250 MB",
                f"{rss / MB:.0f} MB",
                rss < 250 * MB,
            )
        )
    return found


def scenario_table(suite: Suite) -> str:
    header = (
        "| scenario | server | load | req/s | images/s | p50 ms | p95 ms | p99 ms | errors | mean batch rows "
        "| server CPU | client CPU | peak RSS MB | of ceiling |\n|---|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|---|"
    )
    rows = []
    order = ["http ceiling", "sample", "decode", "upload", "open loop"]
    for s in sorted(suite.scenarios, key=lambda s: order.index(s.group) if s.group in order else len(order)):
        load = s.load
        errors = ", ".join(f"{k}: {v}" for k, v in load.errors.items()) or "0"
        ceiling = "(the HTTP ceiling)" if s.group == "http ceiling" else f"{s.fraction:.0%} of {s.bound}"
        rows.append(
            f"| {s.name} | {s.server.replace('batching ', '')} | {s.label} | {_fmt(load.requests_per_s)} "
            f"| {_fmt(load.images_per_s, 0) if s.rows else '-'} | {_fmt(load.percentile_ms(50), 2)} "
            f"| {_fmt(load.percentile_ms(95), 2)} | {_fmt(load.percentile_ms(99), 2)} | {errors} "
            f"| {_fmt(s.mean_batch)} | {_fmt(s.cpu_percent, 0)}% | {_fmt(s.client_cpu_percent, 0)}% | {s.peak_rss / MB:.0f} | {ceiling} |"
        )
    return header + "\n" + "\n".join(rows)


def cpu_table(suite: Suite, concurrency: int = 64) -> str:
    """Service CPU per request for /ping and /decode at `concurrency`, split by thread."""
    header = (
        "| scenario | server | req/s | event-loop thread us/request | other threads (inference) us/request "
        "| all threads us/request | event-loop thread busy |\n|---|---|--:|--:|--:|--:|--:|"
    )
    rows = []
    for s in suite.scenarios:
        if s.load.mode != "closed" or s.load.concurrency != concurrency or s.group not in ("http ceiling", "decode"):
            continue
        busy = s.loop_cpu_us * s.load.completed / s.load.window_s / 1e6 if s.load.window_s else float("nan")
        rows.append(
            f"| {s.name} | {s.server.replace('batching ', '')} | {_fmt(s.load.requests_per_s)} | {_fmt(s.loop_cpu_us, 0)} "
            f"| {_fmt(max(0.0, s.cpu_us - s.loop_cpu_us), 0)} | {_fmt(s.cpu_us, 0)} | {_fmt(100 * busy, 0)}% |"
        )
    return header + "\n" + "\n".join(rows)


def decode_bound(suite: Suite, target: float = 0.70) -> list[str]:
    """The arithmetic behind the /decode-to-/ping target, from this run's own measurements."""
    ping, decode = _find(suite, "/ping", concurrency=64), _find(suite, "/decode", concurrency=64)
    graphs = suite.ceiling.get("graphs", {})
    if not (ping and decode and graphs.get("decoder")) or math.isnan(ping.cpu_us) or math.isnan(decode.cpu_us):
        return []
    best = max(graphs["decoder"].items(), key=lambda item: item[1])
    row_us = 1e6 / best[1]
    ping_us, decode_us = ping.cpu_us, decode.cpu_us
    allowed = ping_us / target - ping_us - row_us
    other = decode_us - ping_us - row_us
    lines = [
        f"**What bounds /decode against /ping at c=64** (from the table above and the compute ceiling). With the "
        f"service on one core its req/s is about 1 / (CPU per request). /ping costs {ping_us:,.0f} us per request in "
        f"all; the decoder alone costs at best {row_us:,.0f} us per row (onnxruntime in-process, batch {best[0]}). So even "
        f"if everything else /decode does (read and check the JSON, hand the row to the batcher and back, write the "
        f"PNG) cost nothing beyond /ping's work, /decode would reach {ping_us:,.0f} / ({ping_us:,.0f} + {row_us:,.0f}) = "
        f"**{ping_us / (ping_us + row_us):.0%} of /ping**. {target:.0%} allows /decode {ping_us / target:,.0f} us in all, "
        f"which leaves {allowed:,.0f} us for that other work; it measured {other:,.0f} us "
        f"({decode_us:,.0f} - {ping_us:,.0f} - {row_us:,.0f}; inference on the batch workers took "
        f"{decode.cpu_us - decode.loop_cpu_us:,.0f} us per request at {decode.mean_batch:.0f}-row batches).",
    ]
    ping_all, decode_all = _find(suite, "/ping", UNPINNED, 64), _find(suite, "/decode", UNPINNED, 64)
    if ping_all and decode_all and not math.isnan(decode_all.loop_cpu_us):
        lines += [
            "",
            f"With the service on every core, inference runs beside the event loop, and the event-loop thread (which "
            f"holds the GIL for all the Python work) bounds req/s: it costs {ping_all.loop_cpu_us:,.0f} us per /ping and "
            f"{decode_all.loop_cpu_us:,.0f} us per /decode, so a loop-bound /decode reaches at most "
            f"{ping_all.loop_cpu_us / decode_all.loop_cpu_us:.0%} of /ping.",
        ]
    return lines


def ceiling_table(suite: Suite) -> str:
    graphs = suite.ceiling["graphs"]
    sizes = list(graphs["decoder"])
    header = "| graph | " + " | ".join(f"batch {b}" for b in sizes) + " |\n|---|" + "--:|" * len(sizes)
    rows = [f"| {graph} | " + " | ".join(f"{graphs[graph][b]:,.0f}" for b in sizes) + " |" for graph in graphs]
    seen = set()
    for s in suite.scenarios:
        if s.round_ceiling and s.rows not in seen:  # PNG and npy of one n share the measurements
            seen.add(s.rows)
            rows.append(
                f"| decoder, between the /sample n={s.rows} rounds (mean) | "
                + " | ".join(f"{s.round_ceiling[b]:,.0f}" if b in s.round_ceiling else "-" for b in sizes)
                + " |"
            )
    return header + "\n" + "\n".join(rows)


def markdown(suite: Suite, plot_name: str | None = "throughput.png") -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(suite.started_at))
    took = suite.finished_at - suite.started_at
    model = suite.model
    pin = (
        f"service and compute ceiling pinned to CPU {sorted(suite.server_cpus)}, load generator to CPU "
        f"{sorted(suite.client_cpus)}"
        if suite.server_cpus
        else "no pinning (fewer than 2 cores)"
    )
    loads = " -> ".join("/".join(f"{x:.2f}" for x in avg) for avg in suite.load_average)
    lines = [
        f"Measured {when} at commit `{git_commit()}` in {took:.0f} s; machine: {machine()}.",
        f"{pin}; load average (1/5/15 min) before -> after: {loads}.",
        f"Model `{model.get('name')}` {model.get('version')} (latent {model.get('latent_dim')}, "
        f"{model.get('provider')}); closed-loop runs {suite.duration_s:g} s after {suite.warmup_s:g} s warm-up; "
        f"open-loop latency counts from each request's scheduled arrival.",
        "",
        "**Targets**",
        "",
        "| target | wanted | got | met |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t.name} | {t.wanted} | {t.got} | {'yes' if t.met else '**no**'} |" for t in targets(suite)]
    lines += [
        "",
        '**Scenarios** (one row per run; "of ceiling": req/s as a fraction of the lower of the two ceilings: '
        "/ping at the same concurrency, or onnxruntime in-process at the largest batch the scenario can form)",
        "",
        scenario_table(suite),
        "",
        f"**Compute ceiling**: onnxruntime in-process, images/s, the service's session options "
        f"({suite.ceiling.get('intra_op_threads')} intra-op thread), on the service's core; the better of two "
        f"measurements, at the start and the end of the run",
        "",
        ceiling_table(suite),
        "",
        "**Service CPU per request at c=64** (per-thread CPU times over the measured windows, per response)",
        "",
        cpu_table(suite),
        "",
        *decode_bound(suite),
        "",
        f"**Memory**: RSS at ready with {', '.join(model.get('loaded', []))} loaded: "
        f"{suite.memory['ready_rss'] / MB:.0f} MB (batching off service: {suite.memory['ready_rss_off'] / MB:.0f} MB); "
        f"peak during the run: {suite.memory['peak_rss'] / MB:.0f} MB; at the end: {suite.memory['end_rss'] / MB:.0f} MB.",
    ]
    if plot_name:
        lines += ["", f"![throughput against concurrency]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot(suite: Suite, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = {}
    for s in suite.scenarios:
        if s.load.mode != "closed" or s.group == "sample":
            continue
        key = s.name if s.server == "batching on" else f"{s.name} ({s.server})"
        series.setdefault(key, []).append((s.load.concurrency, s.load.requests_per_s))
    figure, axis = plt.subplots(figsize=(9, 4.2), dpi=110)
    for name, points in series.items():
        points.sort()
        axis.plot(
            [c for c, _ in points],
            [r for _, r in points],
            marker="o",
            label=name,
            linestyle="--" if "(" in name else "-",
        )
    axis.set_xscale("log", base=2)
    axis.set_xticks([1, 8, 32, 64], labels=["1", "8", "32", "64"])
    axis.set_xlabel("concurrent connections (closed loop)")
    axis.set_ylabel("requests/s")
    axis.set_ylim(bottom=0)
    when = time.strftime("%Y-%m-%d", time.gmtime(suite.started_at))
    axis.set_title(f"VAE service throughput, server on 1 core ({when})", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
