from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

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
