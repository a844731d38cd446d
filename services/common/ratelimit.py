"""Rate limiting as a port: the embedded adapter here; a Redis adapter (same algorithm) comes later.

The algorithm is GCRA (the generic cell rate algorithm, as in redis-cell): one timestamp per key, smooth
limiting with a burst allowance, and an exact retry-after for the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


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
