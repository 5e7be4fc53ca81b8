"""Hostile inputs against the input checks of the default policy's PII and secrets detectors (issue 20
item 2): benign latency p50/p99 before any hostile input, then after a stream of hostile inputs; a
benign call gets "through" as a failure when it errors, times out or is blocked. Goal: after/before
p99 within 2x, 0 failed benign calls.

    python -m benchmarks.adversarial.hostile [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

HOSTILE = {
    "emoji_only": "😀👍🏽🔥👨\u200d👩\u200d👧" * 12_000,
    "one_char_1mb": "a" * 1_000_000,
    "combining_marks": "e" + "\u0301\u0308" * 20_000,
    "rtl_controls": "\u202e\u200f\u2067" * 20_000 + "hello",
    "separators_only": " .-_/" * 4_000,
    "emoji_word_8k": "😀" * 8_000,
}
BENIGN = ["Please write to Maria Lopez at maria.lopez@example.org about the trip to the coast.",
          "What is the capital of Australia and why was it chosen?",
          "Summarise the attached meeting notes in three bullet points for the team."]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run(quick: bool) -> list[dict[str, Any]]:
    from guardrails.runtime import build_runtime
    from guardrails.types import CallContext

    rt = build_runtime()
    pipe = rt.pipeline
    n = 20 if quick else 100

    async def benign(k: int) -> tuple[list[float], int]:
        ms, bad = [], 0
        for i in range(k):
            t0 = time.perf_counter()
            d = await pipe.check("input", [BENIGN[i % len(BENIGN)]], CallContext())
            ms.append((time.perf_counter() - t0) * 1000)
            bad += bool(d.errors) or d.blocked
        return ms, bad

    async def main() -> list[dict[str, Any]]:
        await benign(5)  # warm
        before, bad0 = await benign(n)
        rows = []
        hostile_status = []
        for name, text in HOSTILE.items():
            t0 = time.perf_counter()
            d = await pipe.check("input", [text], CallContext())
            hostile_status.append(f"{name} {(time.perf_counter() - t0):.1f}s{' ' + ','.join(d.errors) if d.errors else ''}")
        after, bad1 = await benign(n)
        ratio50 = statistics.median(after) / statistics.median(before)
        ratio99 = _pct(after, 0.99) / _pct(before, 0.99)
        rows.append({"class": "hostile_then_benign", "tried": n, "through": bad1,
                     "note": f"benign p50 {statistics.median(before):.1f} -> {statistics.median(after):.1f} ms "
                             f"({ratio50:.2f}x), p99 {_pct(before, 0.99):.1f} -> {_pct(after, 0.99):.1f} ms "
                             f"({ratio99:.2f}x); failed before {bad0}; hostile: {'; '.join(hostile_status)}"})
        return rows

    try:
        return asyncio.run(main())
    finally:
        asyncio.run(rt.aclose())  # joins the workers: no model run left going at exit


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        print(f"{r['class']:24} tried {r['tried']:>4} through {r['through']:>3}  {r['note']}")
