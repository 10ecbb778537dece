"""Issue 17's scenarios, run in rounds on the service's core, and the tables that compare the medians.

Per scenario and concurrency every server takes its turn (A B C D, D C B A, ...), each turn a
closed loop of `slice_s` seconds after a warm-up, with the others paused (bench/peers/launch.py).
A server's figure is the median over its turns: a single turn on this shared host can move by 20%.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.loadgen import LoadResult, Traffic, closed_loop, merge
from bench.peers.launch import Running
from bench.traffic import latents

CONCURRENCY = (1, 32, 64)
ROUNDS = 3


@dataclass(frozen=True)
class Scenario:
    key: str  # as in launch.Server.routes
    title: str
    rows: int  # latents per request
    answer: str  # "json" (each server's natural JSON answer) or "npy"


SCENARIOS = (
    Scenario("json", "1 latent per request, each server's natural JSON answer", 1, "json"),
    Scenario("npy", "1 latent per request, float32 .npy answer", 1, "npy"),
    Scenario("batch256", "256 latents per request, float32 .npy answer", 256, "npy"),
)


@dataclass
class Cell:
    """One server in one scenario at one concurrency: its turns and what they add up to."""

    server: str
    scenario: str
    concurrency: int
    turns: list[LoadResult] = field(default_factory=list)
    cpu_percent: list[float] = field(default_factory=list)  # the server's process tree, % of one core, per turn
    # In-process images/s around each turn (batched scenarios, ours only): the mean of the ceiling
    # taken just before the turn and the one just after, so each turn meets the host it ran on.
    ceilings: list[float] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        """Median over the turns."""
        return _median([t.requests_per_s for t in self.turns])

    @property
    def images_per_s(self) -> float:
        return _median([t.images_per_s for t in self.turns])

    @property
    def of_ceiling(self) -> list[float]:
        """Per turn: images/s over the ceiling around that turn."""
        return [ratio(t.images_per_s, c) for t, c in zip(self.turns, self.ceilings, strict=False)]

    @property
    def merged(self) -> LoadResult:
        return merge(self.turns)

    @property
    def server_cpu_percent(self) -> float:
        return _median(self.cpu_percent)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(ours: float, theirs: float) -> float:
    """Ours / theirs; nan when either is unknown or theirs is zero (nothing to divide by)."""
    if math.isnan(ours) or math.isnan(theirs) or theirs <= 0:
        return float("nan")
    return ours / theirs


class Turn:
    """The window hook for one turn: the server tree's CPU seconds at the window's start and end."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.marks: dict[str, tuple[float, float]] = {}

    def __call__(self, name: str) -> None:
        self.marks[name] = (time.perf_counter(), self.running.cpu_seconds())

    @property
    def cpu_percent(self) -> float:
        if "start" not in self.marks or "end" not in self.marks:
            return float("nan")
        (wall0, cpu0), (wall1, cpu1) = self.marks["start"], self.marks["end"]
        return 100.0 * (cpu1 - cpu0) / (wall1 - wall0) if wall1 > wall0 else float("nan")


def measure(
    servers: Sequence[tuple[str, dict[str, tuple[Running, str]]]],
    latent_dim: int,
    *,
    scenarios: Sequence[Scenario] = SCENARIOS,
    concurrency: Sequence[int] = CONCURRENCY,
    rounds: int = ROUNDS,
    slice_s: float = 2.0,
    warmup_s: float = 0.5,
    ceiling: Callable[[int], float] | None = None,
    keep_awake: bool = False,
) -> list[Cell]:
    """`servers`: (name, scenario key -> (Running, target)) for each server, all suspended on entry.
    Each turn resumes the one deployment that answers, runs the closed loop and suspends it again.
    `ceiling(rows)`: onnxruntime's in-process images/s at that batch on the servers' core, taken
    just before and just after each of the first server's turns in a many-latent scenario, while
    every server is paused. `keep_awake`: the load generator polls (bench/loadgen.py), for a client
    on cores of its own."""
    cells = []
    for scenario in scenarios:
        for c in concurrency:
            row = []
            for name, routes in servers:
                running, target = routes[scenario.key]
                load = latents(running.port, target, latent_dim, scenario.rows, name=f"{name} {scenario.key}")
                row.append((Cell(name, scenario.key, c), running, load))
            for round_index in range(rounds):
                order = row if round_index % 2 == 0 else list(reversed(row))
                for cell, running, load in order:
                    # Around the first server's turns (this service's): the host moves within a round.
                    around = ceiling if scenario.rows > 1 and cell is row[0][0] else None
                    before = around(scenario.rows) if around is not None else math.nan
                    _turn(cell, running, load, c, slice_s, warmup_s, keep_awake)
                    if around is not None:
                        cell.ceilings.append((before + around(scenario.rows)) / 2)
            for cell, _, _ in row:
                print(
                    f"  {scenario.key:9s} c={c:<3d} {cell.server:16s} {cell.requests_per_s:9.1f} req/s "
                    f"{cell.images_per_s:9.0f} images/s  p50 {cell.merged.percentile_ms(50):7.2f} ms  "
                    f"errors {cell.merged.errors or '-'}",
                    flush=True,
                )
                cells.append(cell)
    return cells


def _turn(
    cell: Cell, running: Running, load: Traffic, concurrency: int, slice_s: float, warmup_s: float, keep_awake: bool
) -> None:
    turn = Turn(running)
    running.resume()
    try:
        result = closed_loop(running.port, load, concurrency, slice_s, warmup_s, hook=turn, keep_awake=keep_awake)
    finally:
        running.suspend()
    cell.turns.append(result)
    cell.cpu_percent.append(turn.cpu_percent)


def _number(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def _find(cells: Sequence[Cell], server: str, scenario: str, concurrency: int) -> Cell | None:
    return next(
        (c for c in cells if c.server == server and c.scenario == scenario and c.concurrency == concurrency), None
    )


def _figure(cell: Cell | None, scenario: Scenario) -> float:
    if cell is None:
        return float("nan")
    return cell.images_per_s if scenario.rows > 1 else cell.requests_per_s


def glance_table(cells: Sequence[Cell], ours: str, peers: Sequence[str], scenarios=SCENARIOS) -> str:
    """One row per scenario and concurrency: our median next to each peer's and ours / theirs.
    req/s for one latent per request, images/s for 256."""
    header = ["scenario", "c", f"{ours}"] + [f"{peer} | ours / {peer}" for peer in peers]
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|--:|--:|" + "--:|--:|" * len(peers),
    ]
    for scenario in scenarios:
        unit = "images/s" if scenario.rows > 1 else "req/s"
        for c in sorted({cell.concurrency for cell in cells if cell.scenario == scenario.key}):
            mine = _figure(_find(cells, ours, scenario.key, c), scenario)
            row = [f"{scenario.title} ({unit})", str(c), _number(mine)]
            for peer in peers:
                theirs = _figure(_find(cells, peer, scenario.key, c), scenario)
                row += [_number(theirs), _times(ratio(mine, theirs))]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def full_table(cells: Sequence[Cell], ours: str, scenarios=SCENARIOS) -> str:
    """Every cell: medians over the turns, latency over all turns together, errors, server CPU."""
    lines = [
        "| scenario | c | server | req/s (median) | images/s (median) | req/s per turn | p50 ms | p99 ms | errors "
        "| server CPU | ours / this |",
        "|---|--:|---|--:|--:|---|--:|--:|---|--:|--:|",
    ]
    titles = {s.key: s for s in scenarios}
    for cell in cells:
        scenario = titles[cell.scenario]
        merged = cell.merged
        mine = _figure(_find(cells, ours, cell.scenario, cell.concurrency), scenario)
        errors = ", ".join(f"{k}: {v}" for k, v in merged.errors.items()) or "0"
        versus = "-" if cell.server == ours else _times(ratio(mine, _figure(cell, scenario)))
        lines.append(
            f"| {cell.scenario} | {cell.concurrency} | {cell.server} | {_number(cell.requests_per_s, 1)} "
            f"| {_number(cell.images_per_s)} | {' / '.join(_number(t.requests_per_s) for t in cell.turns)} "
            f"| {_number(merged.percentile_ms(50), 2)} | {_number(merged.percentile_ms(99), 2)} | {errors} "
            f"| {_number(cell.server_cpu_percent)}% | {versus} |"
        )
    return "\n".join(lines)


def ceiling_table(cells: Sequence[Cell], ours: str) -> str:
    """Our many-latent cells against onnxruntime in-process at the same batch, each turn against the
    ceiling measured around it; the median over the turns."""
    lines = [
        "| scenario | c | this service images/s | in-process images/s around each turn | each turn of its ceiling "
        "| of ceiling (median) |",
        "|---|--:|--:|---|---|--:|",
    ]
    for cell in cells:
        if cell.server != ours or not cell.ceilings:
            continue
        ceilings = " / ".join(_number(v) for v in cell.ceilings)
        turns = " / ".join(f"{v:.0%}" for v in cell.of_ceiling)
        lines.append(
            f"| {cell.scenario} | {cell.concurrency} | {_number(cell.images_per_s)} | {ceilings} | {turns} "
            f"| {_median(cell.of_ceiling):.0%} |"
        )
    return "\n".join(lines)
