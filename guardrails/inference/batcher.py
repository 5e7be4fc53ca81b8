"""MicroBatcher: coalesce concurrent calls into one model run.

Callers (any thread, any event loop) submit a list of items; one worker thread takes the first
waiting request, then keeps taking requests until `max_batch` items are gathered or `max_wait_ms`
has passed since that first request was queued, runs `fn` once over all items and hands each caller
its slice. A request that waited while the worker was busy is past its deadline already, so under
load batches form from the queue without extra waiting, and a lone request is delayed by at most
`max_wait_ms` (0: never). The model function sorts and pads per batch (see OnnxTextClassifier).

With `workers=2` two threads alternate: while one runs a batch, the other gathers the next (only one
gathers at a time), so CPU-side work (tokenising, padding) overlaps the model run. Worker threads end
after `idle_exit_s` without work and start again on the next submit: no thread outlives its use.

A request whose future was cancelled before it ran (its caller timed out: `asyncio.wrap_future`
cancels it) is skipped, so abandoned work never queues the next callers behind it; `stats` shows
`busy_s` of the running batch and `stuck` past 10 s (read by detectors' info and /readyz).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


@dataclass
class _Request(Generic[T, R]):
    items: Sequence[T]
    future: Future[list[R]]
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    requests: int = 0
    max_items: int = 0
    cancelled: int = 0  # requests skipped because their caller had given up (timed out) before they ran
    failed: int = 0  # batches whose function raised
    busy_since: float | None = None  # perf_counter when the running batch started, None when idle
    queued: int = 0

    def as_dict(self, stuck_after_s: float = 10.0) -> dict[str, Any]:
        mean = self.items / self.batches if self.batches else 0.0
        busy = time.perf_counter() - self.busy_since if self.busy_since is not None else 0.0
        return {"batches": self.batches, "items": self.items, "requests": self.requests,
                "mean_batch": round(mean, 2), "max_batch_seen": self.max_items, "cancelled": self.cancelled,
                "failed": self.failed, "queued": self.queued, "busy_s": round(busy, 3),
                "stuck": busy > stuck_after_s}


class MicroBatcher(Generic[T, R]):
    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 32, max_wait_ms: float = 2.0,
                 name: str = "trustwall-batcher", idle_exit_s: float = 30.0, workers: int = 1):
        if max_batch < 1 or workers < 1:
            raise ValueError("max_batch and workers must be >= 1")
        self.workers = workers
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self._name = name
        self._idle_exit = idle_exit_s  # the worker thread ends after this long idle; the next submit restarts it
        self._q: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._gather = threading.Lock()  # one worker gathers a batch at a time
        self._closed = False
        self.stats = BatchStats()

    # ------------------------------------------------------------------ public

    def submit(self, items: Sequence[T]) -> Future[list[R]]:
        """Queue items; the future resolves to one result per item, in order."""
        fut: Future[list[R]] = Future()
        if not items:
            fut.set_result([])
            return fut
        with self._lock:
            if self._closed:
                raise RuntimeError("MicroBatcher is closed")
            while len(self._threads) < self.workers:
                t = threading.Thread(target=self._worker, name=f"{self._name}-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()
            self._q.put(_Request(list(items), fut))
        return fut

    async def run(self, items: Sequence[T]) -> list[R]:
        """Async form of submit: awaits the batch without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(items))

    def __call__(self, items: Sequence[T]) -> list[R]:
        """Blocking form (for synchronous callers)."""
        return self.submit(items).result()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._q.put(_STOP)
        for t in threads:
            t.join(timeout=10)

    # ------------------------------------------------------------------ worker

    def _live(self, req: _Request[T, R]) -> bool:
        """False for a request whose caller cancelled it (e.g. a detector timeout): it is not run, so an
        abandoned request never holds the worker (issue 20)."""
        if req.future.set_running_or_notify_cancel():
            return True
        with self._lock:
            self.stats.cancelled += 1
        return False

    def _collect(self, first: _Request[T, R]) -> tuple[list[_Request[T, R]], bool]:
        batch = [first]
        count = len(first.items)
        deadline = first.queued + self.max_wait
        while count < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                nxt = self._q.get(timeout=left) if left > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            if not self._live(nxt):
                continue
            batch.append(nxt)
            count += len(nxt.items)
        return batch, False

    def _worker(self) -> None:
        stop = False
        while not stop:
            with self._gather:
                try:
                    first = self._q.get(timeout=self._idle_exit)
                except queue.Empty:
                    with self._lock:
                        if self._q.empty():
                            self._threads.remove(threading.current_thread())
                            return
                    continue
                if first is _STOP:
                    break
                if not self._live(first):
                    continue
                batch, stop = self._collect(first)
            flat: list[T] = [it for req in batch for it in req.items]
            with self._lock:
                self.stats.busy_since = time.perf_counter()
                self.stats.queued = self._q.qsize()
            try:
                results = list(self._fn(flat))
                if len(results) != len(flat):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(flat)} items")
            except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
                with self._lock:
                    self.stats.busy_since = None
                    self.stats.failed += 1
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(exc)
                continue
            with self._lock:
                self.stats.busy_since = None
                self.stats.queued = self._q.qsize()
                self.stats.batches += 1
                self.stats.items += len(flat)
                self.stats.requests += len(batch)
                self.stats.max_items = max(self.stats.max_items, len(flat))
            pos = 0
            for req in batch:
                n = len(req.items)
                if not req.future.done():
                    req.future.set_result(results[pos:pos + n])
                pos += n
        if not self._closed:
            return
        # fail whatever is still queued after close; leave the other workers' stop markers in place
        stops = 0
        while True:
            try:
                req = self._q.get_nowait()
            except queue.Empty:
                break
            if req is _STOP:
                stops += 1
            elif not req.future.done() and req.future.set_running_or_notify_cancel():
                req.future.set_exception(RuntimeError("MicroBatcher is closed"))
        for _ in range(stops):
            self._q.put(_STOP)
