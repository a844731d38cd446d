"""The one Redis client a process's distributed adapters share (bus, limits, shared state), from ``[redis]``."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.config import RedisConfig

# What a Redis call raises when the server cannot be reached (or stops answering): adapters turn it into UNAVAILABLE.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def redis_client(config: RedisConfig) -> aioredis.Redis:
    """A pooled asyncio client; it connects on first use."""
    return aioredis.Redis.from_url(
        config.url,
        password=config.password.get_secret_value() if config.password else None,
        socket_connect_timeout=config.connect_timeout,
        health_check_interval=30,
    )
