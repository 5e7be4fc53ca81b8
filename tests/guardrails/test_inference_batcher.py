"""MicroBatcher: concurrent calls coalesce into one run, each caller gets its own results in order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from guardrails.inference.batcher import MicroBatcher


class Recorder:
    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[list[int]] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(list(items))
        return [x * 10 for x in items]


async def test_each_caller_gets_its_slice_in_order():
    rec = Recorder()
    b = MicroBatcher(rec, max_batch=64, max_wait_ms=50)
    try:
        results = await asyncio.gather(*(b.run([i, i + 100]) for i in range(10)))
    finally:
        b.close()
    assert results == [[i * 10, (i + 100) * 10] for i in range(10)]
    assert sum(len(c) for c in rec.calls) == 20


async def test_concurrent_callers_share_runs_while_the_worker_is_busy():
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=32, max_wait_ms=0)
    try:
        first = asyncio.wrap_future(b.submit([0]))
        assert await asyncio.to_thread(rec.entered.wait, 5)  # the worker holds [0] and waits on the gate
        rest = [asyncio.wrap_future(b.submit([i])) for i in range(1, 21)]  # queued while it is busy
        gate.set()
        assert await first == [0]
        assert [await r for r in rest] == [[i * 10] for i in range(1, 21)]
    finally:
        b.close()
    assert rec.calls[0] == [0]
    assert sorted(x for c in rec.calls[1:] for x in c) == list(range(1, 21))
    assert len(rec.calls) <= 3  # the 20 waiting requests ran as (at most) two batches, not 20
    assert b.stats.max_items >= 10


async def test_max_batch_caps_items_per_run():
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=4, max_wait_ms=0)
    try:
        futs = [b.submit([i]) for i in range(12)]
        gate.set()
        assert [f.result(5) for f in futs] == [[i * 10] for i in range(12)]
    finally:
        b.close()
    assert max(len(c) for c in rec.calls) <= 4


async def test_error_reaches_every_caller_of_the_batch_and_the_worker_survives():
    calls = {"n": 0}

    def fn(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("boom")
        return items

    b = MicroBatcher(fn, max_batch=8, max_wait_ms=0)
    try:
        with pytest.raises(ValueError, match="boom"):
            await b.run([1])
        assert await b.run([2, 3]) == [2, 3]
    finally:
        b.close()


async def test_wrong_result_count_is_an_error():
    b = MicroBatcher(lambda items: items[:-1], max_batch=8, max_wait_ms=0)
    try:
        with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
            await b.run([1, 2])
    finally:
        b.close()


def test_sync_call_empty_input_and_close():
    b = MicroBatcher(lambda items: [x + 1 for x in items], max_batch=8, max_wait_ms=0)
    assert b([1, 2]) == [2, 3]
    assert b([]) == []
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.submit([1])


def test_idle_worker_exits_and_restarts_on_demand():
    b = MicroBatcher(lambda items: items, max_batch=8, max_wait_ms=0, idle_exit_s=0.05)
    try:
        assert b([1]) == [1]
        deadline = time.monotonic() + 5
        while b._threads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b._threads == []
        assert b([2]) == [2]
    finally:
        b.close()


async def test_callers_from_different_event_loops():
    b = MicroBatcher(lambda items: [x * 2 for x in items], max_batch=8, max_wait_ms=1)
    try:
        other = await asyncio.to_thread(lambda: asyncio.run(b.run([5])))
        assert other == [10]
        assert await b.run([6]) == [12]
    finally:
        b.close()


async def test_two_workers_pipeline_and_keep_order():
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=8, max_wait_ms=0, workers=2)
    try:
        futs = [b.submit([i]) for i in range(30)]
        gate.set()
        assert [f.result(5) for f in futs] == [[i * 10] for i in range(30)]
    finally:
        b.close()
    assert sorted(x for c in rec.calls for x in c) == list(range(30))
    assert max(len(c) for c in rec.calls) <= 8
