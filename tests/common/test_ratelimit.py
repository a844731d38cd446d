"""GCRA rate limiter: bursts, refusals with an exact retry-after, independent keys."""

from __future__ import annotations

import pytest

from services.common.ratelimit import InMemoryRateLimiter, Rate


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_burst_then_refuse_then_recover() -> None:
    clock = _Clock()
    limiter = InMemoryRateLimiter()
    limiter._now = clock
    rate = Rate(limit=5, period=60)
    decisions = [await limiter.hit("a", rate) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].retry_after == pytest.approx(12.0)
    assert (await limiter.hit("b", rate)).allowed  # keys are independent
    clock.now += 12.0
    assert (await limiter.hit("a", rate)).allowed
    assert not (await limiter.hit("a", rate)).allowed


async def test_bounded_key_count() -> None:
    limiter = InMemoryRateLimiter(max_keys=10)
    for i in range(100):
        await limiter.hit(f"k{i}", Rate(limit=1, period=60))
    assert len(limiter._tat) == 10
