"""Dynamic batching: rows are packed and split in order, the queue is bounded, and batched
results equal unbatched ones bit for bit."""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import pytest

from devtools.live import MODELS_DIR
from service.batching import GraphBatcher
from service.config import Settings
from service.errors import InferenceTimeout, QueueFull, ShuttingDown
from service.registry import session_options


class RecordingRun:
    """A fake graph: doubles its input and records each batch's rows."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[int] = []
        self.delay_s = delay_s
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: np.ndarray):
        self.gate.wait()
        self.batches.append(len(batch))
        if self.delay_s:
            time.sleep(self.delay_s)
        return [batch * 2, batch + 1]


def make_batcher(run, **kwargs) -> GraphBatcher:
    options = {"max_batch_rows": 8, "max_queue_rows": 100, **kwargs}
    batcher = GraphBatcher("test", run, **options)
    batcher.start()
    return batcher


def rows(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.float32)[:, None]


def test_a_request_larger_than_max_batch_rows_is_split_and_reassembled_in_order():
    run = RecordingRun()
    batcher = make_batcher(run)
    try:
        doubled, plus_one = asyncio.run(batcher.infer(rows(0, 21), timeout_s=5))
    finally:
        batcher.stop()
    assert run.batches == [8, 8, 5]
    assert np.array_equal(doubled, rows(0, 21) * 2) and np.array_equal(plus_one, rows(0, 21) + 1)


def test_small_requests_queued_while_the_engine_is_busy_are_packed_into_one_batch():
    run = RecordingRun()
    batcher = make_batcher(run)
    run.gate.clear()  # hold the engine busy on the first request

    async def scenario():
        first = asyncio.ensure_future(batcher.infer(rows(0, 1), timeout_s=5))
        await asyncio.sleep(0.05)
        others = [asyncio.ensure_future(batcher.infer(rows(10 * i, 3), timeout_s=5)) for i in range(1, 4)]
        await asyncio.sleep(0.05)
        run.gate.set()
        return await first, await asyncio.gather(*others)

    try:
        first, others = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert run.batches == [1, 8, 1]  # 3 + 3 + 2 rows packed, the last row of the third request follows
    for i, (doubled, _) in enumerate(others, start=1):
        assert np.array_equal(doubled, rows(10 * i, 3) * 2)


def test_an_idle_engine_starts_at_once_and_max_queue_delay_waits_to_fill_a_batch():
    run = RecordingRun()
    idle = make_batcher(run)
    try:
        started = time.perf_counter()
        asyncio.run(idle.infer(rows(0, 1), timeout_s=5))
        assert time.perf_counter() - started < 0.05
    finally:
        idle.stop()
    waiting = make_batcher(run, max_queue_delay_s=0.2)
    try:
        started = time.perf_counter()
        asyncio.run(waiting.infer(rows(0, 1), timeout_s=5))
        assert time.perf_counter() - started >= 0.19
    finally:
        waiting.stop()


def test_a_full_queue_rejects_at_once_counting_rows():
    run = RecordingRun()
    batcher = make_batcher(run, max_queue_rows=10)
    run.gate.clear()

    async def scenario():
        busy = asyncio.ensure_future(batcher.infer(rows(0, 1), timeout_s=5))  # taken by the worker
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(batcher.infer(rows(0, 10), timeout_s=5))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as rejected:
            await batcher.infer(rows(0, 1), timeout_s=5)
        run.gate.set()
        await busy, await queued
        return rejected.value

    try:
        error = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert error.queued_rows == 10 and error.max_queue_rows == 10 and error.retry_after_s >= 1


def test_a_queue_refuses_rows_that_would_wait_past_max_queue_wait_but_never_an_empty_one():
    run = RecordingRun(delay_s=0.04)  # 8 rows per batch: 5 ms per row once timed
    batcher = make_batcher(run, max_queue_rows=1000, max_queue_wait_s=0.1)
    assert batcher.wait_s() is None  # nothing timed yet: only the row bound applies

    async def scenario():
        await batcher.infer(rows(0, 8), timeout_s=5)  # times one batch
        run.gate.clear()
        busy = asyncio.ensure_future(batcher.infer(rows(0, 8), timeout_s=5))  # taken by the worker
        await asyncio.sleep(0.05)
        admitted = asyncio.ensure_future(batcher.infer(rows(0, 24), timeout_s=5))  # found the queue empty
        await asyncio.sleep(0.01)
        waiting = batcher.wait_s()
        with pytest.raises(QueueFull) as refused:
            await batcher.infer(rows(0, 1), timeout_s=5)  # 24 rows ahead: about 0.12 s
        run.gate.set()
        await busy, await admitted
        late = await batcher.infer(rows(0, 1), timeout_s=5)  # drained: admitted again
        return waiting, refused.value, late

    try:
        waiting, error, late = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert 24 * 0.004 < waiting < 24 * 0.02
    assert error.details["queued_rows"] == 24 and error.details["max_queue_wait_s"] == 0.1
    assert error.details["estimated_wait_s"] == pytest.approx(waiting, abs=1e-3)
    assert "VAE_MAX_QUEUE_WAIT_S" in error.message and error.retry_after_s == 1
    np.testing.assert_array_equal(late[0], rows(0, 1) * 2)


def test_a_request_past_its_timeout_fails_and_its_rows_are_skipped():
    run = RecordingRun()
    batcher = make_batcher(run)
    run.gate.clear()

    async def scenario():
        busy = asyncio.ensure_future(batcher.infer(rows(0, 1), timeout_s=5))
        await asyncio.sleep(0.05)
        with pytest.raises(InferenceTimeout):
            await batcher.infer(rows(0, 4), timeout_s=0.05)
        run.gate.set()
        await busy

    try:
        asyncio.run(scenario())
    finally:
        batcher.stop()
    assert run.batches == [1]
    assert batcher.queued_rows == 0


@pytest.mark.parametrize("workers", [1, 0])
def test_stop_finishes_queued_work_then_refuses_new_work(workers):
    run = RecordingRun(delay_s=0.02)
    batcher = make_batcher(run, workers=workers)

    async def scenario():
        pending = [asyncio.ensure_future(batcher.infer(rows(i, 5), timeout_s=5)) for i in range(6)]
        await asyncio.sleep(0)
        stopper = asyncio.ensure_future(asyncio.to_thread(batcher.stop, 5))
        results = await asyncio.gather(*pending)
        await stopper
        with pytest.raises(ShuttingDown):
            await batcher.infer(rows(0, 1), timeout_s=5)
        return results

    results = asyncio.run(scenario())
    assert [np.array_equal(doubled, rows(i, 5) * 2) for i, (doubled, _) in enumerate(results)] == [True] * 6


def test_onnxruntime_rows_do_not_depend_on_batch_size_with_the_default_session_options():
    options = session_options(Settings())
    session = ort.InferenceSession(
        str(MODELS_DIR / "mnist" / "decoder.onnx"), options, providers=["CPUExecutionProvider"]
    )
    latents = np.random.default_rng(0).standard_normal((64, 32), dtype=np.float32)
    alone = np.concatenate([session.run(None, {"z": latents[i : i + 1]})[0] for i in range(64)])
    for size in (2, 3, 7, 16, 64):
        batched = np.concatenate([session.run(None, {"z": latents[i : i + size]})[0] for i in range(0, 64, size)])
        assert np.array_equal(batched, alone), f"batch size {size} changed a row"


def metric_value(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_concurrent_mixed_size_requests_are_batched_and_equal_unbatched_results(live_server):
    """Fires 64 concurrent /decode requests of 1..600 rows; each answer must equal the decoder run
    one row at a time in-process, and /metrics must show fewer batches than requests."""
    check_concurrent_decodes(live_server)


def test_batches_on_the_event_loop_are_merged_and_equal_unbatched_results_too(server_factory):
    check_concurrent_decodes(server_factory({"VAE_ENGINE_WORKERS": "0"}))


def check_concurrent_decodes(live_server) -> None:
    rng = np.random.default_rng(123)
    sizes = [1, 2, 3, 5, 8, 13, 1, 1, 600, 40, 1, 7] * 5 + [1, 300, 2, 1]
    requests = [rng.standard_normal((size, 32), dtype=np.float32) for size in sizes]
    session = ort.InferenceSession(
        str(MODELS_DIR / "mnist" / "decoder.onnx"), session_options(Settings()), providers=["CPUExecutionProvider"]
    )
    labels = 'graph="decoder",model="mnist"'
    with live_server.client() as http:
        before = http.get("/metrics").text

        def decode(latents: np.ndarray) -> bytes:
            buffer = io.BytesIO()
            np.save(buffer, latents)
            response = http.post(
                "/decode",
                params={"format": "npy"},
                content=buffer.getvalue(),
                headers={"Content-Type": "application/x-npy"},
            )
            assert response.status_code == 200, response.text
            return response.content

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(decode, requests))
        after = http.get("/metrics").text
    for latents, answer in zip(requests, answers, strict=True):
        alone = np.concatenate([session.run(None, {"z": latents[i : i + 1]})[0] for i in range(len(latents))])
        assert np.array_equal(np.load(io.BytesIO(answer)), alone)
    batches = metric_value(after, "vae_batch_size_rows_count", labels) - metric_value(
        before, "vae_batch_size_rows_count", labels
    )
    rows_run = metric_value(after, "vae_batch_size_rows_sum", labels) - metric_value(
        before, "vae_batch_size_rows_sum", labels
    )
    assert rows_run == sum(sizes)
    # Without merging there would be at least one batch per request (more for the split ones).
    assert batches < len(sizes), f"{batches} batches for {len(sizes)} requests: no merging happened"


class ConcurrencyProbe:
    """A fake graph that records how many batches run at the same time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def __call__(self, batch: np.ndarray):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        return [batch]


def run_concurrently(batcher: GraphBatcher, sizes: list[int]) -> list[np.ndarray]:
    async def scenario():
        return await asyncio.gather(*(batcher.infer(rows(0, n), timeout_s=5) for n in sizes))

    try:
        return asyncio.run(scenario())
    finally:
        batcher.stop()


def test_a_second_worker_runs_big_backlogs_in_parallel_in_order():
    probe = ConcurrencyProbe()
    results = run_concurrently(make_batcher(probe, max_batch_rows=64, max_queue_rows=1000, workers=2), [300, 300])
    assert probe.most == 2
    assert all(np.array_equal(out, rows(0, 300)) for (out,) in results)


def test_a_second_worker_leaves_tiny_requests_to_the_first():
    probe = ConcurrencyProbe()
    run_concurrently(make_batcher(probe, max_batch_rows=64, workers=2, parallel_min_rows=32), [1] * 10)
    assert probe.most == 1


# --- workers=0: batches on the event loop ------------------------------------------------------


def test_inline_batches_pack_the_requests_of_one_loop_pass_split_and_in_order():
    run = RecordingRun()
    batcher = make_batcher(run, workers=0)

    async def scenario():
        return await asyncio.gather(
            *(batcher.infer(rows(10 * i, n), timeout_s=5) for i, n in enumerate([1, 3, 3, 3, 11]))
        )

    results = asyncio.run(scenario())
    assert run.batches == [8, 8, 5]  # 21 rows queued in one pass: packed, the last request split
    for i, (n, (doubled, plus_one)) in enumerate(zip([1, 3, 3, 3, 11], results, strict=True)):
        assert np.array_equal(doubled, rows(10 * i, n) * 2) and np.array_equal(plus_one, rows(10 * i, n) + 1)
    assert not batcher._threads and batcher.queued_rows == 0


def test_inline_requests_from_later_passes_get_their_own_batches():
    run = RecordingRun()
    batcher = make_batcher(run, workers=0)

    async def scenario():
        first = await batcher.infer(rows(0, 2), timeout_s=5)
        second = await batcher.infer(rows(5, 2), timeout_s=5)
        return first, second

    (first, _), (second, _) = asyncio.run(scenario())
    assert run.batches == [2, 2]
    assert np.array_equal(first, rows(0, 2) * 2) and np.array_equal(second, rows(5, 2) * 2)


def test_inline_max_queue_delay_waits_to_fill_a_batch_and_a_full_batch_starts_at_once():
    run = RecordingRun()
    batcher = make_batcher(run, workers=0, max_queue_delay_s=0.2)

    async def scenario():
        started = time.perf_counter()
        await batcher.infer(rows(0, 1), timeout_s=5)
        waited = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(batcher.infer(rows(0, 4), timeout_s=5), batcher.infer(rows(0, 4), timeout_s=5))
        return waited, time.perf_counter() - started

    waited, full = asyncio.run(scenario())
    assert waited >= 0.19 and full < 0.15
    assert run.batches == [1, 8]


def test_inline_a_request_past_its_timeout_fails_and_frees_its_rows():
    run = RecordingRun()
    batcher = make_batcher(run, workers=0, max_queue_delay_s=0.3)

    async def scenario():
        with pytest.raises(InferenceTimeout):
            await batcher.infer(rows(0, 4), timeout_s=0.05)
        assert batcher.queued_rows == 0
        await asyncio.sleep(0.4)  # the scheduled flush finds nothing left to run

    asyncio.run(scenario())
    assert run.batches == []


def test_inline_a_failing_batch_fails_its_requests_and_the_next_one_runs():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("graph failed")
        return [batch]

    batcher = make_batcher(flaky, workers=0)

    async def scenario():
        with pytest.raises(RuntimeError):
            await batcher.infer(rows(0, 2), timeout_s=5)
        return await batcher.infer(rows(0, 3), timeout_s=5)

    (out,) = asyncio.run(scenario())
    assert calls == [2, 3] and np.array_equal(out, rows(0, 3))


def test_inline_a_backlog_of_full_batches_runs_back_to_back():
    log: list[str] = []

    def run(batch):
        log.append("batch")
        return [batch]

    batcher = make_batcher(run, workers=0)

    async def scenario():
        async def ticker():
            while True:
                await asyncio.sleep(0)
                log.append("tick")

        ticking = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        await asyncio.gather(
            *(batcher.infer(rows(0, 8), timeout_s=5) for _ in range(3)), batcher.infer(rows(0, 2), timeout_s=5)
        )
        ticking.cancel()

    asyncio.run(scenario())
    batches = [i for i, entry in enumerate(log) if entry == "batch"]
    assert len(batches) == 4 and batches[:3] == list(range(batches[0], batches[0] + 3))  # no loop pass between


class CountingDerive:
    """A derived output (the input of each batch's first output, negated), counting its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, outputs):
        self.calls.append(len(outputs[0]))
        return [-outputs[0]]


def test_derived_outputs_are_computed_only_for_batches_holding_a_request_that_wants_them():
    derive = CountingDerive()
    batcher = make_batcher(RecordingRun(), workers=0, derive=derive)

    async def scenario():
        lean = await asyncio.gather(*(batcher.infer(rows(i, 3), timeout_s=5, derived=False) for i in range(2)))
        # In one pass: 11 rows that do not want them, split over two batches, then 2 that do.
        mixed = await asyncio.gather(
            batcher.infer(rows(0, 11), timeout_s=5, derived=False), batcher.infer(rows(20, 2), timeout_s=5)
        )
        return lean, mixed

    lean, (skips, wants) = asyncio.run(scenario())
    assert derive.calls == [5]  # the lean 6-row and 8-row batches derived nothing
    assert all(len(outputs) == 2 for outputs in lean)
    doubled, plus_one, negated = wants
    assert np.array_equal(doubled, rows(20, 2) * 2) and np.array_equal(negated, -(rows(20, 2) * 2))
    # The lean request's chunks came from both kinds of batch: it gets the outputs both have.
    assert len(skips) == 2 and np.array_equal(skips[0], rows(0, 11) * 2) and np.array_equal(skips[1], rows(0, 11) + 1)
