"""Token-bucket rate limits per principal: in-process by default, Redis when `settings.redis_url` is
set, so several replicas of the proxy share one budget.

`await limiter.acquire(key, rate)` returns None when the call may go ahead, or the number of seconds
after which it may be retried (the proxy answers 429 with that as Retry-After).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from guardrails.policy import RateLimit


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate: RateLimit) -> float | None: ...
    async def aclose(self) -> None: ...


def refill(tokens: float, last: float, now: float, rate: RateLimit) -> float:
    """Pure token-bucket refill: tokens after `now - last` seconds, capped at the burst."""
    per_s = rate.requests_per_minute / 60.0
    return min(float(rate.burst), tokens + max(0.0, now - last) * per_s)


def wait_for(tokens: float, rate: RateLimit) -> float:
    """Seconds until one token is available."""
    per_s = rate.requests_per_minute / 60.0
    return max(0.0, (1.0 - tokens) / per_s)


class MemoryRateLimiter:
    """One process's buckets. Instance state only (one per app)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_keys = max_keys

    async def acquire(self, key: str, rate: RateLimit) -> float | None:
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(rate.burst), now))
        tokens = refill(tokens, last, now, rate)
        if tokens >= 1.0:
            if len(self._buckets) >= self._max_keys and key not in self._buckets:
                self._buckets.clear()  # bounded memory; a reset only ever grants more
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return wait_for(tokens, rate)

    async def aclose(self) -> None:
        self._buckets.clear()


# KEYS[1] bucket key; ARGV: per_ms rate, burst, ttl ms. Uses the server clock so replicas agree.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return wait
"""


class RedisRateLimiter:
    """Buckets in Redis, updated atomically by one Lua script per call (server clock)."""

    def __init__(self, url: str, prefix: str = "trustwall:rl:", client: Any = None):
        if client is None:
            import redis.asyncio as aioredis

            client = aioredis.from_url(url)
        self._r = client
        self._prefix = prefix
        self._script = self._r.register_script(_LUA)

    async def acquire(self, key: str, rate: RateLimit) -> float | None:
        per_ms = rate.requests_per_minute / 60_000.0
        ttl_ms = int(math.ceil(rate.burst / per_ms)) + 1000
        wait_ms = int(await self._script(keys=[self._prefix + key], args=[repr(per_ms), rate.burst, ttl_ms]))
        return None if wait_ms <= 0 else wait_ms / 1000.0

    async def aclose(self) -> None:
        close = getattr(self._r, "aclose", None) or self._r.close
        res = close()
        if asyncio.iscoroutine(res):
            await res


def open_rate_limiter(redis_url: str | None, prefix: str = "trustwall:rl:") -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, prefix=prefix)
    return MemoryRateLimiter()
