"""The GCRA limiter on a real redis-server: the same decisions as in memory, atomic across replicas."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from services.common.ports import free_port
from services.common.ratelimit import Rate, RateLimiterUnavailable, RedisRateLimiter
from services.platform.localredis import RedisServer


async def test_burst_then_refuse_with_an_exact_retry_after(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    rate = Rate(limit=5, period=60)
    started = time.monotonic()
    decisions = [await limiter.hit("a", rate) for _ in range(6)]
    elapsed = time.monotonic() - started
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    # the 6th event is allowed one emission interval (12 s) after the first, measured on the server's clock
    assert 12.0 - elapsed - 0.01 <= decisions[-1].retry_after <= 12.0
    assert (await limiter.hit("b", rate)).allowed  # keys are independent
    ttl = await redis_client.pttl(f"{redis_prefix}a")
    assert 0 < ttl <= 60_001  # an idle key expires when its theoretical arrival time passes


async def test_waiting_the_retry_after_is_enough(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    rate = Rate(limit=2, period=0.4, burst=1)  # one event every 0.2 s, no burst
    assert (await limiter.hit("k", rate)).allowed
    refused = await limiter.hit("k", rate)
    assert not refused.allowed and 0 < refused.retry_after <= 0.2
    await asyncio.sleep(refused.retry_after)
    assert (await limiter.hit("k", rate)).allowed


async def test_replicas_share_one_budget_atomically(redis_server: RedisServer, redis_prefix: str) -> None:
    """Two replicas (two clients, two limiters) hitting one key concurrently: exactly the burst gets through."""
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    try:
        limiters = [RedisRateLimiter(c, prefix=redis_prefix) for c in clients]
        rate = Rate(limit=10, period=3600)
        decisions = await asyncio.gather(*(limiters[i % 2].hit("shared", rate) for i in range(60)))
        assert sum(d.allowed for d in decisions) == 10
        assert all(d.retry_after > 0 for d in decisions if not d.allowed)
    finally:
        for c in clients:
            await c.aclose()


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    with pytest.raises(RateLimiterUnavailable, match="unreachable"):
        await RedisRateLimiter(client).hit("k", Rate(limit=1, period=1))
    await client.aclose()
