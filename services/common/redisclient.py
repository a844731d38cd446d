"""The one Redis client a process's distributed adapters share (bus, limits, shared state), from ``[redis]``."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.config import RedisConfig

# What a Redis call raises when the server cannot be reached (or stops answering): adapters turn it into UNAVAILABLE.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


# A command that meets a broken connection (a pooled one the server closed when it restarted, or a failover) is
# sent again on a fresh one, up to this many times with a short backoff, before the caller sees UNREACHABLE.
# Without it, every pooled connection fails one command after each Redis restart. A retried command may have run
# once already: what the adapters send is idempotent or harmless twice (set-to-value writes, the position script
# that applies a report only when it is newer, XACK; a duplicated XADD is a redelivery, which consumers absorb).
RETRIES = 3


def client_options(connect_timeout: float) -> dict[str, Any]:
    """The connection options of every Redis client of the platform."""
    return {
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


def redis_client(config: RedisConfig) -> aioredis.Redis:
    """A pooled asyncio client; it connects on first use."""
    return aioredis.Redis.from_url(
        config.url,
        password=config.password.get_secret_value() if config.password else None,
        **client_options(config.connect_timeout),
    )
