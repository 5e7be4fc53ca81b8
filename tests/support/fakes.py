from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from guardrails.types import CallContext, Finding, Stage


class FakeDetector:
    """A detector defined by a function text -> findings, with optional delay or crash."""

    def __init__(self, name: str, fn: Callable[[str], list[Finding]] | None = None, *, delay: float = 0.0,
                 crash: Exception | None = None, barrier: asyncio.Barrier | None = None):
        self.name = name
        self.fn = fn or (lambda _t: [])
        self.delay = delay
        self.crash = crash
        self.barrier = barrier
        self.calls: list[list[str]] = []

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        self.calls.append(list(texts))
        if self.barrier is not None:
            await self.barrier.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.crash is not None:
            raise self.crash
        return [self.fn(t) for t in texts]


def find_word(name: str, word: str, category: str, score: float = 1.0) -> Callable[[str], list[Finding]]:
    def fn(text: str) -> list[Finding]:
        out = []
        start = text.find(word)
        while start != -1:
            out.append(Finding(name, category, score, (start, start + len(word))))
            start = text.find(word, start + 1)
        return out

    return fn


@pytest.fixture
def fake_detector() -> type[FakeDetector]:
    return FakeDetector


async def round_trip(pipeline: Any, messages: Sequence[str], model: Callable[..., Any], ctx: CallContext) -> Any:
    """Input checks, the model, output checks, restoring: the pipeline's round trip without an adapter
    (raises Blocked like the ways in do). Returns (input decision, output decision, restored text)."""
    from types import SimpleNamespace

    from guardrails.errors import Blocked

    dec_in = await pipeline.check_input(list(messages), ctx)
    if dec_in.blocked:
        raise Blocked(dec_in)
    raw = await model(list(dec_in.texts), dec_in)
    dec_out = await pipeline.check_output(raw, ctx)
    if dec_out.blocked:
        raise Blocked(dec_out)
    return SimpleNamespace(input=dec_in, output=dec_out, text=pipeline.restore(dec_out.text, ctx))
