"""Hostile inputs must not degrade later calls (issue 20): emoji-only, 1 MB of one character, combining
marks, RTL controls, separators only; then benign calls all pass, unblocked and untimed-out. Also the
isolation pieces: a timed-out caller's queued work is dropped, and a busy worker shows in its stats."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from detectors.registry import builtin_registry
from guardrails.detector import BuildContext, Resources, memo
from guardrails.inference.batcher import MicroBatcher
from guardrails.pipeline import Pipeline
from guardrails.policy import parse_policy
from guardrails.runtime import build_detectors
from guardrails.settings import Settings
from guardrails.types import CallContext

POLICY = """
policy: {id: hostile-test, version: "1"}
detectors:
  - name: pii
    type: pii
    stages: [input]
    timeout_ms: 5000
    on_error: block
    rules:
      "*": {action: redact, threshold: 0.5}
      DATE_TIME: {action: allow}
  - name: secrets
    type: secrets
    stages: [input]
    timeout_ms: 5000
    on_error: block
    rules:
      "*": {action: block, threshold: 0.5}
"""

HOSTILE = {
    "emoji_only": "😀👍🏽🔥👨\u200d👩\u200d👧" * 12_000,
    "one_char_1mb": "a" * 1_000_000,
    "combining": "e" + "\u0301\u0308" * 20_000,
    "rtl_controls": "\u202e\u200f\u2067" * 20_000 + "hello",
    "separators_only": " .-_/" * 4_000,
}


@pytest.mark.slow
def test_benign_calls_pass_after_hostile_inputs():
    registry = builtin_registry()
    policy = parse_policy(POLICY, source="hostile.yaml", registry=registry)
    settings = Settings(hash_key="k", data_dir=Path("/nonexistent-trustwall-test"))
    build = BuildContext(settings=settings, resources=Resources())
    detectors = build_detectors(policy, registry, build)
    pipe = Pipeline(policy, detectors, hash_key=b"k")

    async def run() -> None:
        for name, text in HOSTILE.items():
            d = await pipe.check("input", [text], CallContext())
            assert "secrets" not in d.errors, name
        for i in range(10):
            d = await pipe.check("input", [f"Please write to Maria Lopez at maria{i}@example.org about the trip."],
                                 CallContext())
            assert not d.errors and not d.blocked
            assert all(t.status == "ok" for t in d.timings)
            assert "maria" not in d.texts[0].lower()
        info = detectors["pii"].info()["spacy_batches"]
        assert info["stuck"] is False and info["busy_s"] == 0

    asyncio.run(run())
    for d in detectors.values():
        close = getattr(d, "close", None)
        if close:
            close()


def test_timed_out_requests_are_skipped_and_the_worker_recovers():
    gate = threading.Event()
    entered = threading.Event()
    ran: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        ran.append(list(items))
        if items[0] == 0:
            entered.set()
            gate.wait(5)
        return [i * 2 for i in items]

    b = MicroBatcher(fn, max_batch=1, max_wait_ms=0.0)

    async def run() -> None:
        slow = asyncio.ensure_future(b.run([0]))
        assert await asyncio.to_thread(entered.wait, 5)  # the worker is inside the slow batch
        assert b.stats.busy_since is not None  # counted as busy while inside the batch
        abandoned = [asyncio.ensure_future(b.run([k])) for k in (1, 2, 3)]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*abandoned), 0.05)
        gate.set()
        assert await slow == [0]
        assert await b.run([7]) == [14]

    asyncio.run(run())
    b.close()
    assert [1] not in ran and [2] not in ran and [3] not in ran
    stats = b.stats.as_dict()
    assert stats["cancelled"] == 3 and stats["busy_s"] == 0 and not stats["stuck"]


def test_memo_cancels_work_when_every_waiter_gave_up():
    async def run() -> None:
        ctx = CallContext()
        cancelled = []

        async def compute() -> int:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
            return 1

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(memo(ctx, "k", compute), 0.05)
        await asyncio.sleep(0.01)
        assert cancelled == [True]

        # two waiters: one giving up does not cancel the other's result
        async def quick() -> int:
            await asyncio.sleep(0.05)
            return 2

        ctx2 = CallContext()
        a = asyncio.ensure_future(memo(ctx2, "k", quick))
        b = asyncio.ensure_future(memo(ctx2, "k", quick))
        await asyncio.sleep(0)
        a.cancel()
        assert await b == 2

    asyncio.run(run())


class _SlowWindows:
    """A fake token-window classifier: each window is 'scored' slowly, and each batch is counted."""

    windowed = True
    labels = ["toxicity"]
    categories = ["toxicity"]

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.release = threading.Event()

    def windows(self, texts):  # noqa: ANN001, ANN201
        import numpy as np

        from guardrails.inference.tokenize import Window

        return [Window(i, np.zeros(4, dtype=np.int64)) for i, t in enumerate(texts) for _ in range(max(1, len(t) // 10))]

    def run_windows(self, windows):  # noqa: ANN001, ANN201
        import numpy as np

        self.batches.append(len(windows))
        if len(windows) > 1:  # the long text's slices are slow
            self.release.wait(0.2)
        return np.full((len(windows), 1), 0.5, dtype=np.float32)

    def reduce(self, n, windows, scores):  # noqa: ANN001, ANN201
        import numpy as np

        out = np.zeros((n, 1), dtype=np.float32)
        for w, s in zip(windows, scores):
            out[w.text_index] = np.maximum(out[w.text_index], s)
        return out

    def as_dicts(self, arr):  # noqa: ANN001, ANN201
        return [{"toxicity": float(r[0])} for r in arr]

    def info(self) -> dict:
        return {}


async def test_a_timed_out_long_text_stops_between_window_slices_and_others_run_in_between() -> None:
    from detectors.toxicity import ModelScorer

    clf = _SlowWindows()
    scorer = ModelScorer(clf, max_batch=4, max_wait_ms=1.0, workers=1, cache_size=0)  # slices of 4 windows
    try:
        long_text = "x" * 10 * 400  # 400 windows: 100 slices of 4, 0.2 s each (20 s if all ran)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(scorer.ascore([long_text]), timeout=0.5)
        short = await asyncio.wait_for(scorer.ascore(["hi"]), timeout=2.0)  # not queued behind 49 slices
        assert short == [{"toxicity": 0.5}]
        assert sum(1 for b in clf.batches if b > 1) <= 5  # the slices after the timeout never ran
    finally:
        clf.release.set()
        scorer.close()
