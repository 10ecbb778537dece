"""The load generator: HTTP/1.1 keep-alive over raw asyncio sockets, closed- or open-loop.

Raw sockets rather than httpx: on a 2-core box the client shares the machine with the server,
and httpx spends ~10x more CPU per request than this parser, so it would measure itself.
The parser reads only what a benchmark needs (status and Content-Length); the service always
sends Content-Length. Traffic goes to 127.0.0.1 only and every run is bounded in time and count.

- closed loop: `concurrency` connections, each sends its next request when the last one returns.
- open loop: arrivals at a fixed `rate`, whatever the server does; latency counts from the
  scheduled arrival time, so a slow server cannot hide its queue (no coordinated omission).

`keep_awake`: the loop polls its sockets instead of sleeping in epoll, for a load generator on
cores of its own. On a shared VM a vCPU that idles through a long request is slow to wake, and
at one connection that wake-up lands in every request's turnaround, whichever server answers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

try:  # the service pins uvloop; the client is faster on it too
    import uvloop

    _LOOP_FACTORY = uvloop.new_event_loop
except ImportError:  # pragma: no cover
    _LOOP_FACTORY = None

HOST = "127.0.0.1"  # the only host the load generator talks to
GRACE_S = 15.0  # after the window, longest wait for requests still in flight
CONNECT_ERROR = "conn_error"
CLIENT_TIMEOUT = "client_timeout"

WindowHook = Callable[[str], None]  # called with "start" and "end" of the measured window


@dataclass(frozen=True)
class Traffic:
    """Pre-built raw requests for one scenario, sent in turn; `images` per successful response."""

    name: str
    requests: tuple[bytes, ...]
    images: int = 0


@dataclass
class LoadResult:
    mode: str  # "closed" or "open"
    concurrency: int | None
    rate: float | None
    window_s: float
    latencies_s: np.ndarray  # every response whose request started in the window
    statuses: Counter = field(default_factory=Counter)  # status (int) or error name -> count
    completed: int = 0  # responses that ended in the window (any status)
    ok: int = 0  # 2xx among them
    images: int = 0  # images in those 2xx responses
    late_s: float = 0.0  # open loop: how far the client fell behind its schedule at worst

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.window_s if self.window_s > 0 else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.window_s if self.window_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        if not len(self.latencies_s):
            return float("nan")
        return float(np.percentile(self.latencies_s, q) * 1000.0)

    @property
    def errors(self) -> dict[str, int]:
        return {
            str(k): v for k, v in sorted(self.statuses.items(), key=str) if not (isinstance(k, int) and 200 <= k < 300)
        }


def merge(results: Sequence[LoadResult]) -> LoadResult:
    """Several runs of one scenario as one (their windows add up)."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    statuses: Counter = Counter()
    for result in results:
        statuses.update(result.statuses)
    return LoadResult(
        mode=first.mode,
        concurrency=first.concurrency,
        rate=first.rate,
        window_s=sum(r.window_s for r in results),
        latencies_s=np.concatenate([r.latencies_s for r in results]),
        statuses=statuses,
        completed=sum(r.completed for r in results),
        ok=sum(r.ok for r in results),
        images=sum(r.images for r in results),
        late_s=max(r.late_s for r in results),
    )


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.need = -1  # bytes of the current response (head + body), once the head is parsed
        self.status = 0
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None:
            self._parse()

    def _parse(self) -> None:
        buffer = self.buffer
        if self.need < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self._fail(ConnectionError("response without Content-Length"))
                return
            stop = head.find(b"\r\n", at + 2)
            self.need = end + 4 + int(head[at + 17 : stop if stop >= 0 else len(head)])
        if len(buffer) >= self.need:
            del buffer[: self.need]
            self.need = -1
            waiter, self.waiter = self.waiter, None
            if not waiter.done():
                waiter.set_result(self.status)

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.waiter = None

    def connection_lost(self, exc) -> None:
        self._fail(ConnectionError("connection closed by the server"))

    def send(self, data: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


async def _connect(port: int) -> _Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(_Connection, HOST, port)
    return protocol


class _Recorder:
    def __init__(self, traffic: Traffic) -> None:
        self.images_per_response = traffic.images
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.statuses: list[int | str] = []

    def add(self, start: float, end: float, status: int | str) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.statuses.append(status)

    def result(self, mode: str, concurrency, rate, window: tuple[float, float], late_s: float = 0.0) -> LoadResult:
        begin, finish = window
        starts, ends = np.asarray(self.starts), np.asarray(self.ends)
        statuses = np.asarray([s if isinstance(s, int) else -1 for s in self.statuses])
        started_in = (starts >= begin) & (starts < finish)
        ended_in = (ends >= begin) & (ends < finish)
        ok = ended_in & (statuses >= 200) & (statuses < 300)
        counts = Counter(s for s, keep in zip(self.statuses, started_in, strict=True) if keep)
        return LoadResult(
            mode=mode,
            concurrency=concurrency,
            rate=rate,
            window_s=finish - begin,
            latencies_s=(ends - starts)[started_in & (statuses >= 0)],
            statuses=counts,
            completed=int(ended_in.sum()),
            ok=int(ok.sum()),
            images=int(ok.sum()) * self.images_per_response,
            late_s=late_s,
        )


async def _request(connection: _Connection | None, port: int, data: bytes) -> tuple[_Connection | None, int | str]:
    """Send one request; reconnect once if the connection is gone. Returns (connection, status)."""
    for attempt in (0, 1):
        try:
            if connection is None or connection.closed:
                connection = await _connect(port)
            return connection, await connection.send(data)
        except (ConnectionError, OSError):
            connection = None
            if attempt:
                return None, CONNECT_ERROR
    raise AssertionError("unreachable")


async def _closed_loop(port, traffic, concurrency, warmup_s, duration_s, max_requests, hook) -> LoadResult:
    recorder = _Recorder(traffic)
    connections = [await _connect(port) for _ in range(concurrency)]
    counter = itertools.count()
    begin = time.perf_counter() + warmup_s
    finish = begin + duration_s
    loop = asyncio.get_running_loop()
    if hook is not None:
        loop.call_later(warmup_s, hook, "start")
        loop.call_later(warmup_s + duration_s, hook, "end")
    requests = traffic.requests

    async def worker(connection: _Connection) -> None:
        while True:
            index = next(counter)
            start = time.perf_counter()
            if start >= finish or index >= max_requests:
                return
            connection, status = await _request(connection, port, requests[index % len(requests)])
            recorder.add(start, time.perf_counter(), status)

    tasks = [asyncio.ensure_future(worker(c)) for c in connections]
    await _finish(tasks, finish, recorder)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    return recorder.result("closed", concurrency, None, (begin, finish))


async def _open_loop(port, traffic, rate, warmup_s, duration_s, max_requests, max_connections, hook) -> LoadResult:
    recorder = _Recorder(traffic)
    idle: deque[_Connection] = deque()
    for _ in range(min(max_connections, 16)):
        idle.append(await _connect(port))
    created = len(idle)
    freed = asyncio.Condition()
    requests = traffic.requests
    count = min(max_requests, int(rate * (warmup_s + duration_s)))
    t0 = time.perf_counter() + 0.01
    begin, finish = t0 + warmup_s, t0 + warmup_s + duration_s
    loop = asyncio.get_running_loop()
    if hook is not None:
        loop.call_later(begin - time.perf_counter(), hook, "start")
        loop.call_later(finish - time.perf_counter(), hook, "end")

    async def arrival(index: int, scheduled: float) -> None:
        nonlocal created
        connection = None
        if idle:
            connection = idle.pop()
        elif created < max_connections:
            created += 1
        else:  # every connection busy: the wait counts in this request's latency
            async with freed:
                await freed.wait_for(lambda: bool(idle))
                connection = idle.pop()
        connection, status = await _request(connection, port, requests[index % len(requests)])
        recorder.add(scheduled, time.perf_counter(), status)
        if connection is None:
            created -= 1
        else:
            idle.append(connection)
        async with freed:
            freed.notify()

    tasks = []
    late = 0.0
    for index in range(count):
        scheduled = t0 + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        tasks.append(asyncio.ensure_future(arrival(index, scheduled)))
    await _finish(tasks, finish, recorder)
    for connection in idle:
        connection.transport.close()
    return recorder.result("open", max_connections, rate, (begin, finish), late)


async def _finish(tasks: Sequence[asyncio.Future], finish: float, recorder: _Recorder) -> None:
    """Wait for the tasks up to GRACE_S past the window; what is still running counts as a client timeout."""
    timeout = max(0.0, finish - time.perf_counter()) + GRACE_S
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        now = time.perf_counter()
        for _ in pending:
            recorder.add(now, now, CLIENT_TIMEOUT)
        await asyncio.gather(*pending, return_exceptions=True)


async def _polling(coro):
    """Await `coro` while a callback that requeues itself keeps every loop pass from blocking."""
    loop = asyncio.get_running_loop()
    handle: asyncio.Handle | None = None

    def poll() -> None:
        nonlocal handle
        handle = loop.call_soon(poll)

    poll()
    try:
        return await coro
    finally:
        handle.cancel()


def _run(coro, keep_awake: bool = False):
    with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
        return runner.run(_polling(coro) if keep_awake else coro)


def closed_loop(
    port: int,
    traffic: Traffic,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.5,
    max_requests: int = 1_000_000,
    hook: WindowHook | None = None,
    keep_awake: bool = False,
) -> LoadResult:
    """`concurrency` keep-alive connections in a send-wait loop for warmup_s + duration_s."""
    return _run(_closed_loop(port, traffic, concurrency, warmup_s, duration_s, max_requests, hook), keep_awake)


def open_loop(
    port: int,
    traffic: Traffic,
    rate: float,
    duration_s: float,
    warmup_s: float = 0.5,
    max_requests: int = 1_000_000,
    max_connections: int = 256,
    hook: WindowHook | None = None,
    keep_awake: bool = False,
) -> LoadResult:
    """Arrivals every 1/rate seconds for warmup_s + duration_s, on up to max_connections connections."""
    return _run(_open_loop(port, traffic, rate, warmup_s, duration_s, max_requests, max_connections, hook), keep_awake)
