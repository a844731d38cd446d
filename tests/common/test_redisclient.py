"""The platform's Redis clients survive a Redis restart: a pooled connection the old server closed is replaced and
the command sent again, so the first call after the restart succeeds instead of failing UNREACHABLE."""

from __future__ import annotations

from pathlib import Path

from services.common.bus.redis import RedisBus
from services.common.config import RedisConfig
from services.common.redisclient import redis_client
from services.platform.localredis import RedisServer


async def test_the_first_call_after_a_redis_restart_succeeds(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendfsync="always")
    server.start()
    client = redis_client(RedisConfig(url=server.url))
    bus = RedisBus.from_url(server.url, prefix="t:")
    try:
        await client.set("k", "before")
        await bus.publish("a.topic", b"before")
        server.kill()  # a crash: the pooled connections are dead
        server.start()  # the same port, the AOF replayed
        assert await client.get("k") == b"before"  # sent again on a fresh connection
        await bus.publish("a.topic", b"after")
        assert await bus.redis.xlen(bus.stream("a.topic")) == 2
    finally:
        await client.aclose()
        await bus.close()
        server.stop()
