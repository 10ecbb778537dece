"""bench.peers: the side-by-side comparison's own arithmetic and wiring, without the peers' venvs.

The peer servers run in their own virtual environments (bash bench/run.sh --peers), so here they
are only compiled; what is checked is what turns turns into figures (medians, ratios, tables),
how answers are compared with onnxruntime in-process, and that the routes the driver sends to
are the ones the peer files serve. No server is started and no load is sent.
"""

from __future__ import annotations

import io
import json
import math
import py_compile
import re
from collections import Counter

import httpx
import numpy as np
import pytest

from bench import traffic
from bench.loadgen import LoadResult
from bench.peers import check, compare, launch
from service.inference import to_uint8
from service.outputs import b64_pngs, npy_bytes

PEER_FILES = ("plain_fastapi.py", "bentoml_service.py", "litserve_server.py", "onnx_decoder.py")
SCENARIOS = {s.key: s for s in compare.SCENARIOS}


def _turn(requests_per_s: float, images_per_request: int = 1, window_s: float = 2.0) -> LoadResult:
    ok = round(requests_per_s * window_s)
    return LoadResult(
        mode="closed",
        concurrency=1,
        rate=None,
        window_s=window_s,
        latencies_s=np.full(ok, 0.001),
        statuses=Counter({200: ok}),
        completed=ok,
        ok=ok,
        images=ok * images_per_request,
    )


def _cell(server: str, scenario: str, concurrency: int, rates: list[float]) -> compare.Cell:
    rows = SCENARIOS[scenario].rows
    cell = compare.Cell(server, scenario, concurrency, [_turn(r, rows) for r in rates], [99.0] * len(rates))
    return cell


@pytest.mark.parametrize("name", PEER_FILES)
def test_each_peer_file_compiles(name, tmp_path):
    py_compile.compile(str(launch.PEERS_DIR / name), cfile=str(tmp_path / "out.pyc"), doraise=True)


@pytest.mark.parametrize("server", launch.PEERS, ids=lambda s: s.venv)
def test_each_peer_pins_every_package_and_pulls_no_torch(server):
    lines = [
        line.strip()
        for line in (launch.PEERS_DIR / f"{server.venv}.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.\-]+", line) for line in lines), lines
    names = {line.split("==")[0].lower() for line in lines}
    assert not names & {"torch", "torchvision", "lightning"}
    assert {"onnxruntime", "numpy", "uvicorn", "httptools", "uvloop"} <= names


@pytest.mark.parametrize("server", [launch.THIS_SERVICE, *launch.PEERS], ids=lambda s: s.name)
def test_every_server_answers_every_scenario_on_a_route_its_file_serves(server):
    assert set(server.routes) == set(SCENARIOS)
    deployments = {d.key for d in server.deployments} or {""}
    for deployment, target in server.routes.values():
        assert deployment in deployments
        if server.venv is not None:  # a route string, or a BentoML API named after it
            path = target.split("?")[0]
            source = (launch.PEERS_DIR / server.source).read_text()
            served = rf"[\"']{re.escape(path)}[\"']|def {re.escape(path.lstrip('/'))}\("
            assert re.search(served, source), f"{server.source} serves no {path}"


def test_a_cell_reports_the_median_turn_not_the_mean():
    cell = _cell("x", "npy", 32, [100.0, 110.0, 400.0])
    assert cell.requests_per_s == pytest.approx(110.0)
    assert cell.images_per_s == pytest.approx(110.0)
    assert cell.merged.ok == sum(t.ok for t in cell.turns)
    batch = _cell("x", "batch256", 32, [10.0, 30.0, 20.0])
    assert batch.requests_per_s == pytest.approx(20.0) and batch.images_per_s == pytest.approx(20.0 * 256)


def test_ratio_is_ours_over_theirs_and_unknown_without_a_figure():
    assert compare.ratio(300.0, 100.0) == pytest.approx(3.0)
    assert compare.ratio(50.0, 100.0) == pytest.approx(0.5)
    assert math.isnan(compare.ratio(100.0, 0.0))
    assert math.isnan(compare.ratio(float("nan"), 100.0))


def test_the_glance_table_puts_each_peer_beside_ours_with_the_ratio():
    ours, peers = "this service", ["plain FastAPI", "BentoML"]
    cells = [
        _cell(ours, "json", 32, [1000.0, 1200.0, 1100.0]),
        _cell("plain FastAPI", "json", 32, [300.0, 275.0, 250.0]),
        _cell("BentoML", "json", 32, [220.0, 200.0, 210.0]),
        _cell(ours, "batch256", 32, [40.0, 38.0, 39.0]),
        _cell("plain FastAPI", "batch256", 32, [20.0, 19.5, 19.0]),
        # BentoML has no batch256 cell: its columns say so instead of failing
    ]
    table = compare.glance_table(cells, ours, peers)
    json_row = next(line for line in table.splitlines() if "JSON answer" in line)
    assert "| 32 | 1,100 | 275 | 4.00x | 210 | 5.24x |" in json_row
    batch_row = next(line for line in table.splitlines() if "256 latents" in line)
    assert "(images/s)" in batch_row and "| 9,984 | 4,992 | 2.00x | - | - |" in batch_row
    assert not any("1 latent per request, float32" in line for line in table.splitlines())  # no npy cells


def test_the_full_table_has_one_row_per_cell_with_its_turns_errors_and_ratio():
    cells = [_cell("this service", "npy", 1, [900.0, 1000.0, 950.0]), _cell("LitServe", "npy", 1, [300.0] * 3)]
    cells[1].turns[0].statuses[500] = 4
    rows = compare.full_table(cells, "this service").splitlines()[2:]
    assert len(rows) == 2
    assert "| npy | 1 | this service | 950.0 |" in rows[0] and "| 900 / 1,000 / 950 |" in rows[0]
    assert rows[0].endswith("| 99% | - |")
    assert "500: 4" in rows[1] and rows[1].endswith("| 3.17x |")


def test_the_ceiling_table_sets_each_of_our_turns_against_the_ceiling_around_it():
    batch = _cell("this service", "batch256", 32, [40.0, 38.0, 39.0])  # 10,240 / 9,728 / 9,984 images/s
    batch.ceilings = [10_000.0, 12_000.0, 11_000.0]
    peer = _cell("LitServe", "batch256", 32, [30.0] * 3)
    peer.ceilings = [1.0]  # only our cells are compared with the ceiling
    rows = compare.ceiling_table([batch, peer, _cell("this service", "npy", 32, [900.0])], "this service")
    rows = rows.splitlines()[2:]
    assert rows == ["| batch256 | 32 | 9,984 | 10,000 / 12,000 / 11,000 | 102% / 81% / 91% | 91% |"]


def test_measure_takes_the_ceiling_just_before_and_after_each_of_our_batched_turns_only(monkeypatch):
    events: list[str] = []

    def turn(cell, *args):
        events.append(f"turn {cell.server}")
        cell.turns.append(_turn(10.0, SCENARIOS[cell.scenario].rows))

    monkeypatch.setattr(compare, "_turn", turn)
    readings = iter([4_000.0, 6_000.0, 5_000.0, 7_000.0])

    def ceiling(rows):
        events.append(f"ceiling {rows}")
        return next(readings)

    routes = {key: (type("R", (), {"port": 1})(), "/x") for key in SCENARIOS}
    cells = compare.measure(
        [("this service", routes), ("LitServe", routes)], 32, concurrency=[32], rounds=2, ceiling=ceiling
    )
    batched = events[events.index("ceiling 256") :]  # batch256 is the last scenario
    # Round one: ours first, bracketed; round two: the peer first, then ours, bracketed.
    assert batched == [
        "ceiling 256",
        "turn this service",
        "ceiling 256",
        "turn LitServe",
        "turn LitServe",
        "ceiling 256",
        "turn this service",
        "ceiling 256",
    ]
    ours = next(c for c in cells if c.server == "this service" and c.scenario == "batch256")
    assert ours.ceilings == [5_000.0, 6_000.0] and all(not c.ceilings for c in cells if c is not ours)
    assert ours.of_ceiling == [2560 / 5_000, 2560 / 6_000]


def _body(request: bytes) -> bytes:
    return request.split(b"\r\n\r\n", 1)[1]


def test_every_server_is_sent_the_same_latents_only_the_target_differs():
    ours = traffic.latents(8000, "/decode?format=npy", 32)
    theirs = traffic.latents(8001, "/decode_npy", 32)
    assert [_body(r) for r in ours.requests] == [_body(r) for r in theirs.requests]
    assert ours.requests[0].startswith(b"POST /decode?format=npy HTTP/1.1\r\n")
    assert theirs.requests[0].startswith(b"POST /decode_npy HTTP/1.1\r\n")
    batch = traffic.latents(8001, "/decode_npy", 32, rows=256)
    assert batch.images == 256 and np.asarray(json.loads(_body(batch.requests[0]))["latents"]).shape == (256, 32)


@pytest.fixture(scope="module")
def reference() -> check.Reference:
    return check.Reference(launch.decoder_path())


def test_an_answer_equals_onnxruntime_only_when_every_value_is_identical(reference):
    images = reference.decode(check.request_latents(reference.latent_dim, 4))
    assert check.compare(images.copy(), images) == (True, "identical")
    nudged = images.copy()
    nudged[0, 0, 0, 0] = np.nextafter(nudged[0, 0, 0, 0], np.float32(2))
    equal, detail = check.compare(nudged, images)
    assert not equal and "over 1 values" in detail
    assert check.compare(images[:1], images)[0] is False
    assert check.compare(images.astype(np.float64), images)[0] is False


def test_each_kind_of_answer_decodes_to_what_it_is_compared_with(reference):
    images = reference.decode(check.request_latents(reference.latent_dim, 3))
    ours, plain, bentoml = launch.THIS_SERVICE, launch.PEERS[0], launch.PEERS[1]
    answers = [
        (ours, "json", {"images": b64_pngs(to_uint8(images))}),  # the service's base64 PNGs
        (plain, "json", {"images": images.tolist()}),  # a float list, keyed
        (bentoml, "json", images.tolist()),  # BentoML's bare list
    ]
    for server, scenario, payload in answers:
        response = httpx.Response(200, content=json.dumps(payload).encode())
        answer = check.answer_images(server, SCENARIOS[scenario], response)
        expected = check.expected_images(server, SCENARIOS[scenario], images)
        assert check.compare(answer, expected) == (True, "identical"), server.name
    response = httpx.Response(200, content=npy_bytes(images))
    answer = check.answer_images(plain, SCENARIOS["npy"], response)
    assert check.compare(answer, check.expected_images(plain, SCENARIOS["npy"], images)) == (True, "identical")
    assert np.load(io.BytesIO(npy_bytes(images))).dtype == np.float32


class _FakeDeployment:
    """What compare.measure uses of a launch.Running: a port, pause and resume, CPU seconds."""

    def __init__(self, label: str, events: list[tuple[str, str]]) -> None:
        self.label, self.port, self.events, self.cpu = label, 1, events, 0.0

    def resume(self) -> None:
        self.events.append(("resume", self.label))

    def suspend(self) -> None:
        self.events.append(("suspend", self.label))

    def cpu_seconds(self) -> float:
        self.cpu += 0.5
        return self.cpu


def test_servers_take_turns_in_alternating_order_each_resumed_only_for_its_own_turn(monkeypatch):
    events: list[tuple[str, str]] = []
    loads = []
    awake: set[bool] = set()

    def fake_closed_loop(port, load, concurrency, duration_s, warmup_s, hook, keep_awake):
        events.append(("load", load.name))
        loads.append((load, concurrency, duration_s))
        awake.add(keep_awake)
        hook("start")
        hook("end")
        return _turn(100.0 if load.name.startswith("ours") else 50.0, load.images)

    monkeypatch.setattr(compare, "closed_loop", fake_closed_loop)
    ours, bento_json, bento_npy = (_FakeDeployment(n, events) for n in ("ours", "bento json", "bento npy"))
    servers = [
        ("ours", {"json": (ours, "/decode?format=json"), "batch256": (ours, "/decode?format=npy")}),
        ("bento", {"json": (bento_json, "/decode"), "batch256": (bento_npy, "/decode_npy")}),
    ]
    scenarios = [SCENARIOS["json"], SCENARIOS["batch256"]]
    cells = compare.measure(
        servers, 32, scenarios=scenarios, concurrency=(1, 64), rounds=3, slice_s=0.1, keep_awake=True
    )

    assert awake == {True}  # every turn's client polls when asked to
    assert [(c.scenario, c.concurrency, c.server) for c in cells] == [
        (s, c, name) for s in ("json", "batch256") for c in (1, 64) for name in ("ours", "bento")
    ]
    assert all(len(c.turns) == 3 and c.cpu_percent for c in cells)
    turns = [e for e in events if e[0] == "load"]
    first_cell = ["ours json", "bento json", "bento json", "ours json", "ours json", "bento json"]  # A B, B A, A B
    assert [name for _, name in turns[:6]] == first_cell
    for index, event in enumerate(events):  # every load runs between its own deployment's resume and suspend
        if event[0] == "load":
            assert events[index - 1][0] == "resume" and events[index + 1][0] == "suspend"
            assert events[index - 1][1] == events[index + 1][1]
    bento_batch = [load for load, _, _ in loads if load.name == "bento batch256"]
    assert bento_batch and bento_batch[0].images == 256 and b"/decode_npy" in bento_batch[0].requests[0]
    assert cells[0].requests_per_s == pytest.approx(100.0) and cells[1].requests_per_s == pytest.approx(50.0)


def test_a_measured_run_writes_the_markdown_a_dated_copy_and_the_raw_numbers(tmp_path):
    from bench.peers import __main__ as peers_main

    run = peers_main.Run(0.0, {1}, {0}, {"this service": {"onnxruntime": "1.32.0"}}, [(1.0, 1.0, 1.0)] * 2, 300.0)
    cells = [_cell("this service", "npy", 64, [1000.0] * 3), _cell("LitServe", "npy", 64, [250.0] * 3)]
    text = peers_main.write(run, cells, tmp_path)
    assert (tmp_path / "peers.md").read_text() == text == (tmp_path / "peers-1970-01-01.md").read_text()
    assert "| this service | onnxruntime 1.32.0 |" in text and "every server pinned to CPU [1]" in text
    assert "| 1,000 | - | - | - | - | 250 | 4.00x |" in text
    raw = json.loads((tmp_path / "peers.json").read_text())
    assert [c["requests_per_s_median"] for c in raw["cells"]] == [1000.0, 250.0]
