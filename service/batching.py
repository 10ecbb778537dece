"""Dynamic batcher: merges concurrent requests for one model graph into one onnxruntime call.

Vocabulary follows Triton's dynamic batcher. Batch size counts rows, not requests; a request
larger than `max_batch_rows` is split and reassembled in order; small ones are packed together.
A worker thread waits on a condition, so an idle engine starts a batch the moment a request
arrives (no added delay unless `max_queue_delay_s` > 0). With `workers=0` the batches run on the
event loop itself, after the requests that arrived together have queued: no thread hand-offs,
which on a single core cost more than the overlap they buy. The queue is bounded in rows and in
time: a request that would exceed `max_queue_rows`, or wait longer than `max_queue_wait_s` behind
the rows queued (at the recent batches' seconds per row), is rejected at once (QueueFull) instead
of growing a queue it could not get through in time. This module knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from service.errors import InferenceTimeout, QueueFull, ShuttingDown

logger = logging.getLogger("service.batching")

RunBatch = Callable[[np.ndarray], Sequence[np.ndarray]]
# Outputs computed from a batch's outputs, once per batch, only when a request in it asks for them.
Derive = Callable[[Sequence[np.ndarray]], Sequence[np.ndarray]]
# workers=0: longest the event loop runs full batches back to back before it reads sockets again.
INLINE_BACKLOG_S = 0.1
# Weight the seconds-per-row estimate keeps per batch: it follows the last few dozen batches.
ROW_TIME_DECAY = 0.9


class BatchObserver(Protocol):
    def observe_batch(self, rows: int, inference_s: float, queue_waits_s: Sequence[float]) -> None: ...


class _Request:
    __slots__ = ("array", "rows", "derived", "taken", "done", "chunks", "future", "loop", "enqueued_at", "cancelled")

    def __init__(
        self, array: np.ndarray, derived: bool, future: asyncio.Future, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.array = array
        self.derived = derived  # wants the derived outputs too
        self.rows = len(array)
        self.taken = 0  # rows handed to a batch
        self.done = 0  # rows whose outputs came back
        self.chunks: list[tuple[int, list[np.ndarray]]] = []
        self.future = future
        self.loop = loop
        self.enqueued_at = time.perf_counter()
        self.cancelled = False

    def outputs(self) -> list[np.ndarray]:
        if len(self.chunks) == 1:
            return self.chunks[0][1]
        self.chunks.sort(key=lambda chunk: chunk[0])
        # Not strict: a request that did not ask for derived outputs may share a batch with one
        # that did; its outputs are then the ones every chunk has.
        return [np.concatenate(parts) for parts in zip(*(outs for _, outs in self.chunks), strict=False)]


def _resolve(completed: list[tuple[_Request, list[np.ndarray] | BaseException]]) -> None:
    """Runs on the event loop: hand each finished request its outputs (or the batch's error)."""
    for request, result in completed:
        if request.future.done():  # timed out or cancelled meanwhile
            continue
        if isinstance(result, BaseException):
            request.future.set_exception(result)
        else:
            request.future.set_result(result)


class GraphBatcher:
    """Queue plus worker thread(s) for one model graph with one input tensor."""

    def __init__(
        self,
        name: str,
        run_batch: RunBatch,
        *,
        max_batch_rows: int,
        max_queue_rows: int,
        max_queue_delay_s: float = 0.0,
        max_queue_wait_s: float | None = None,
        workers: int = 1,
        parallel_min_rows: int = 32,
        seconds_per_batch: float = 0.05,
        observer: BatchObserver | None = None,
        derive: Derive | None = None,
    ) -> None:
        self.name = name
        self.run_batch = run_batch
        self.derive = derive
        self.max_batch_rows = max_batch_rows
        self.max_queue_rows = max_queue_rows
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_wait_s = max_queue_wait_s
        self.workers = workers
        # Workers after the first start a batch only when this many rows wait: tiny batches run
        # better one after another on one thread than side by side; big backlogs use every core.
        self.parallel_min_rows = parallel_min_rows
        self.seconds_per_batch = seconds_per_batch  # for the Retry-After estimate of a full queue
        self.observer = observer
        self.queued_rows = 0  # rows admitted but not yet handed to a batch
        self._queue: deque[_Request] = deque()
        self._lock = lock = threading.Lock()  # held with `with self._lock`: Condition.__enter__ is Python code
        self._cond = threading.Condition(lock)  # the first worker waits here for any work
        self._spill = threading.Condition(lock)  # the others wait here for a backlog
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"batcher-{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        self._flush: asyncio.Handle | None = None  # workers=0: the loop callback that runs the next batch
        # Decayed sums of batch seconds and rows: their ratio is the recent seconds per row, which
        # big batches dominate, as they dominate a backlog. Zero until a batch has run.
        self._batch_s = 0.0
        self._batch_rows = 0.0

    def queue_depth(self) -> float:
        """Rows admitted but not yet handed to a batch (the queue-depth gauge reads this)."""
        return self.queued_rows

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop accepting, finish everything queued, then join the workers (blocking; with
        workers=0, call it off the event loop, which drains the queue meanwhile)."""
        with self._lock:
            self._stopping = True
            self._cond.notify_all()
            self._spill.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s)
        if not self._threads:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while self._queue and (deadline is None or time.monotonic() < deadline):
                time.sleep(0.005)

    def wait_s(self) -> float | None:
        """Estimated seconds until the rows queued now have all started; None before any batch ran."""
        if not self._batch_rows:
            return None
        return self.queued_rows * self._batch_s / self._batch_rows / max(1, self.workers)

    def refuse_if_full(self, rows: int = 1) -> None:
        """QueueFull if `rows` more rows would not be queued now; callers check before reading them."""
        wait = self.wait_s()
        too_long = wait is not None and self.max_queue_wait_s is not None and wait > self.max_queue_wait_s
        if too_long or self.queued_rows + rows > self.max_queue_rows:
            # Rough time to drain what is queued (before any batch is timed: one full batch at a
            # time, `seconds_per_batch` each), at least 1 s.
            drain = wait if wait is not None else self.queued_rows / self.max_batch_rows * self.seconds_per_batch
            retry = max(1, math.ceil(drain))
            if too_long:
                raise QueueFull(rows, self.queued_rows, self.max_queue_rows, retry, wait, self.max_queue_wait_s)
            raise QueueFull(rows, self.queued_rows, self.max_queue_rows, retry)

    async def infer(self, array: np.ndarray, timeout_s: float, derived: bool = True) -> list[np.ndarray]:
        """Queue `array` ([rows, ...]) and return the graph outputs for exactly those rows, followed
        by the derived ones when `derived` (and the batcher has a `derive`)."""
        loop = asyncio.get_running_loop()
        request = _Request(array, derived, loop.create_future(), loop)
        rows = request.rows
        with self._lock:
            if self._stopping:
                raise ShuttingDown("the service is shutting down; retry on another instance")
            self.refuse_if_full(rows)
            self._queue.append(request)
            self.queued_rows += rows
            if self._threads:  # workers=0: no thread waits (Condition.notify is Python code)
                self._cond.notify()
                if self.queued_rows >= self.parallel_min_rows and len(self._threads) > 1:
                    self._spill.notify()
        if not self._threads:
            if self._flush is None:
                self._flush = self._schedule(loop)
            elif isinstance(self._flush, asyncio.TimerHandle) and self.queued_rows >= self.max_batch_rows:
                self._flush.cancel()  # a full batch need not wait for company
                self._flush = loop.call_soon(self._run_inline)
        timer = loop.call_later(timeout_s, self._expire, request, timeout_s)
        try:
            return await request.future
        finally:
            timer.cancel()
            if not request.future.done():  # the caller was cancelled: skip rows not yet started
                self._withdraw(request)

    def _expire(self, request: _Request, timeout_s: float) -> None:
        if not request.future.done():
            request.future.set_exception(InferenceTimeout(timeout_s))
            self._withdraw(request)

    def _withdraw(self, request: _Request) -> None:
        """Drop a request's rows not yet started, so a timed-out request frees its queue space."""
        with self._lock:
            request.cancelled = True
            if request.taken < request.rows:
                try:
                    self._queue.remove(request)
                except ValueError:
                    return
                self.queued_rows -= request.rows - request.taken

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> asyncio.Handle:
        """workers=0: run the next batch two loop passes from now, or when the head's
        max_queue_delay_s is up. Two passes: the requests read by the next poll are parsed in one
        and reach the queue in the other, so they join this batch instead of waiting for the next."""
        delay = self._remaining_delay()
        if delay > 0:
            return loop.call_later(delay, self._run_inline)
        return loop.call_soon(loop.call_soon, self._run_inline)

    def _run_inline(self) -> None:
        self._flush = None
        started = time.perf_counter()
        while True:
            with self._lock:
                parts = self._take_parts() if self._queue and self._remaining_delay() <= 0 else []
            if not parts:  # nothing due, or only requests withdrawn meanwhile (_take_parts drops them)
                break
            self._run(parts)
            # A backlog of full batches runs back to back for a while: between batches the loop
            # would mostly parse requests the full queue then refuses.
            if self.queued_rows < self.max_batch_rows or time.perf_counter() - started > INLINE_BACKLOG_S:
                break
        if self._queue:  # the rest after other callbacks, so a backlog does not starve the loop
            self._flush = self._schedule(asyncio.get_running_loop())

    def _remaining_delay(self) -> float:
        """Seconds the head request may still wait for company; 0 when a batch should start now."""
        if self.max_queue_delay_s <= 0 or self.queued_rows >= self.max_batch_rows or self._stopping:
            return 0.0
        if not self._queue:
            return self.max_queue_delay_s
        # The head may change while waiting (timeouts withdraw requests): recompute each time.
        return max(0.0, self._queue[0].enqueued_at + self.max_queue_delay_s - time.perf_counter())

    def _take_batch(self, worker: int) -> list[tuple[_Request, int, int]] | None:
        """Under the lock: wait for work, then take up to max_batch_rows rows. None: stop."""
        queue = self._queue
        cond = self._cond if worker == 0 else self._spill
        min_rows = 1 if worker == 0 else self.parallel_min_rows
        while True:
            while not queue or (self.queued_rows < min_rows and not self._stopping):
                if self._stopping:
                    return None
                cond.wait()
            remaining = self._remaining_delay()
            if remaining <= 0:
                break
            cond.wait(remaining)
        return self._take_parts()

    def _take_parts(self) -> list[tuple[_Request, int, int]]:
        """Under the lock: up to max_batch_rows rows from the head of the queue."""
        queue = self._queue
        parts: list[tuple[_Request, int, int]] = []
        room = self.max_batch_rows
        while queue and room:
            request = queue[0]
            if request.cancelled:
                queue.popleft()
                self.queued_rows -= request.rows - request.taken
                continue
            start = request.taken
            stop = min(request.rows, start + room)
            parts.append((request, start, stop))
            request.taken = stop
            room -= stop - start
            self.queued_rows -= stop - start
            if stop == request.rows:
                queue.popleft()
        return parts

    def _work(self, worker: int) -> None:
        while True:
            with self._lock:
                parts = self._take_batch(worker)
            if parts is None:
                return
            if parts:
                self._run(parts)

    def _run(self, parts: list[tuple[_Request, int, int]]) -> None:
        started = time.perf_counter()
        waits = [started - request.enqueued_at for request, start, _ in parts if start == 0]
        if len(parts) == 1:
            request, start, stop = parts[0]
            batch = request.array if (start == 0 and stop == request.rows) else request.array[start:stop]
        else:
            batch = np.concatenate([request.array[start:stop] for request, start, stop in parts])
        completed: list[tuple[_Request, list[np.ndarray] | BaseException]] = []
        try:
            outputs = self.run_batch(batch)
            if self.derive is not None and any(request.derived for request, _, _ in parts):
                outputs = [*outputs, *self.derive(outputs)]
        except Exception as exc:  # a failing batch fails its requests, not the worker
            logger.exception("%s: batch of %d rows failed", self.name, len(batch))
            completed = [(request, exc) for request, _, _ in parts]
            for request, _, _ in parts:
                request.cancelled = True  # its other chunks need not run
        else:
            offset = 0
            for request, start, stop in parts:
                rows = stop - start
                request.chunks.append((start, [out[offset : offset + rows] for out in outputs]))
                offset += rows
                request.done += rows
                if request.done == request.rows:
                    completed.append((request, request.outputs()))
        elapsed = time.perf_counter() - started
        self._batch_s = self._batch_s * ROW_TIME_DECAY + elapsed
        self._batch_rows = self._batch_rows * ROW_TIME_DECAY + len(batch)
        if self.observer is not None:
            self.observer.observe_batch(len(batch), elapsed, waits)
        if not completed:
            return
        loops: dict[asyncio.AbstractEventLoop, list] = {}
        for item in completed:
            loops.setdefault(item[0].loop, []).append(item)
        here = None if self._threads else asyncio.get_running_loop()  # workers=0 runs on a loop
        for loop, items in loops.items():
            if loop is here:
                _resolve(items)
                continue
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # that event loop is closed; nobody is waiting any more
                pass
