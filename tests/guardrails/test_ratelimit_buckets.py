"""guardrails.ratelimit: token buckets in memory and in the real Redis (shared by replicas)."""

from __future__ import annotations

import uuid

import pytest

from guardrails.policy import RateLimit
from guardrails.ratelimit import MemoryRateLimiter, RedisRateLimiter, open_rate_limiter, refill, wait_for

RATE = RateLimit(requests_per_minute=60, burst=3)  # one token a second


def test_pure_refill():
    assert refill(0.0, 0.0, 1.5, RATE) == pytest.approx(1.5)
    assert refill(2.0, 0.0, 100.0, RATE) == 3.0
    assert wait_for(0.25, RATE) == pytest.approx(0.75)


async def test_memory_bucket():
    now = [100.0]
    lim = MemoryRateLimiter(clock=lambda: now[0])
    assert [await lim.acquire("k", RATE) for _ in range(3)] == [None, None, None]
    wait = await lim.acquire("k", RATE)
    assert wait == pytest.approx(1.0)
    assert await lim.acquire("other", RATE) is None  # buckets are per key
    now[0] += 1.0
    assert await lim.acquire("k", RATE) is None
    assert await lim.acquire("k", RATE) is not None


@pytest.mark.redis
async def test_redis_bucket_is_shared_between_replicas():
    prefix = f"trustwall:test:{uuid.uuid4().hex}:"
    a = RedisRateLimiter("redis://127.0.0.1:6379/0", prefix=prefix)
    b = RedisRateLimiter("redis://127.0.0.1:6379/0", prefix=prefix)
    try:
        slow = RateLimit(requests_per_minute=6, burst=4)  # 1 token / 10 s: no refill during the test
        results = [await (a if i % 2 else b).acquire("key:1", slow) for i in range(4)]
        assert results == [None] * 4
        wait_a, wait_b = await a.acquire("key:1", slow), await b.acquire("key:1", slow)
        assert wait_a is not None and 0 < wait_a <= 10.0 and wait_b is not None
        assert await a.acquire("key:2", slow) is None
    finally:
        import redis.asyncio as aioredis

        r = aioredis.from_url("redis://127.0.0.1:6379/0")
        keys = [k async for k in r.scan_iter(match=prefix + "*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()
        await a.aclose()
        await b.aclose()


def test_open_rate_limiter():
    assert isinstance(open_rate_limiter(None), MemoryRateLimiter)
    assert isinstance(open_rate_limiter("redis://127.0.0.1:6379/0"), RedisRateLimiter)
