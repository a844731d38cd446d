"""Rate limiting as a port, with an embedded adapter (one process) and a Redis adapter (every replica shares it).

The algorithm is GCRA (the generic cell rate algorithm, as in redis-cell): one timestamp per key, smooth
limiting with a burst allowance, and an exact retry-after for the caller. On Redis it is one Lua script, so a
decision is atomic across replicas, and the clock is the Redis server's, so replicas' clocks do not matter.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import Unavailable
from services.common.redisclient import UNREACHABLE


class Rate(BaseModel):
    """``limit`` events per ``period`` seconds, with bursts of up to ``burst`` (default: ``limit``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(gt=0)
    period: float = Field(gt=0)
    burst: int | None = Field(None, gt=0)

    @property
    def interval(self) -> float:
        return self.period / self.limit

    @property
    def tolerance(self) -> float:
        return self.interval * ((self.burst or self.limit) - 1)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until the next event would be allowed (0 when allowed)


class RateLimiter(Protocol):
    async def hit(self, key: str, rate: Rate) -> Decision:
        """Count one event for ``key``; allowed or not, with the wait before the next allowed event."""
        ...


class InMemoryRateLimiter:
    """Process-local GCRA with a bounded number of tracked keys (least recently used are forgotten)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tat: OrderedDict[str, float] = OrderedDict()  # theoretical arrival time per key
        self._max_keys = max_keys
        self._lock = asyncio.Lock()
        self._now = time.monotonic

    async def hit(self, key: str, rate: Rate) -> Decision:
        async with self._lock:
            now = self._now()
            tat = max(self._tat.get(key, now), now)
            allow_at = tat - rate.tolerance
            if now < allow_at:
                return Decision(False, allow_at - now)
            self._tat[key] = tat + rate.interval
            self._tat.move_to_end(key)
            while len(self._tat) > self._max_keys:
                self._tat.popitem(last=False)
            return Decision(True, 0.0)


class RateLimiterUnavailable(Unavailable):
    """The shared limiter cannot be reached: the call is refused with UNAVAILABLE (reason RATE_LIMITER_UNAVAILABLE,
    retry after a second) rather than let everything through unlimited."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="RATE_LIMITER_UNAVAILABLE", retry_after=1.0)


# KEYS[1]: the key; ARGV[1]: emission interval, ARGV[2]: burst tolerance (seconds). Returns {allowed, retry_after}
# with retry_after as a string (Lua numbers become integers in replies). The key expires when its theoretical
# arrival time passes, so idle keys cost nothing.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, string.format('%.6f', allow_at - now)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1)
return {1, '0'}
"""


class RedisRateLimiter:
    """GCRA in Redis: one script call per decision, keys under ``prefix``."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "marquee:rl:") -> None:
        self._redis = client
        self._prefix = prefix
        self._script = client.register_script(_GCRA)

    async def hit(self, key: str, rate: Rate) -> Decision:
        try:
            allowed, retry_after = await self._script(keys=[self._prefix + key], args=[rate.interval, rate.tolerance])
        except UNREACHABLE as exc:
            raise RateLimiterUnavailable(f"the rate limiter's redis is unreachable: {exc}") from exc
        return Decision(bool(int(allowed)), float(retry_after))
