"""The runtime picks its adapters from configuration: in process by default, Redis when asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from marquee.v1 import accounts_pb2
from services.accounts.revocation import AccessRevoker
from services.common.bus.memory import InMemoryBus
from services.common.bus.redis import RedisBus
from services.common.config import ConfigError, load_config
from services.common.denylist import InMemoryDenyList
from services.common.denylist_redis import RedisDenyList
from services.common.ratelimit import InMemoryRateLimiter, Rate, RedisRateLimiter
from services.platform.localredis import RedisServer
from services.platform.runtime import open_runtime


async def test_embedded_adapters_by_default(tmp_path: Path) -> None:
    runtime = open_runtime(load_config(data_dir=tmp_path))
    try:
        assert isinstance(runtime.deps.bus, InMemoryBus)
        assert isinstance(runtime.deps.rate_limiter, InMemoryRateLimiter)
        assert isinstance(runtime.deps.denylist, InMemoryDenyList)
        assert runtime.redis is None
    finally:
        await runtime.close()


async def test_redis_bus_and_limits_share_one_server(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    config = load_config(
        data_dir=tmp_path,
        bus={"kind": "redis"},
        limits={"kind": "redis"},
        redis={"url": redis_server.url, "key_prefix": redis_prefix},
    )
    runtime = open_runtime(config)
    try:
        bus, limiter = runtime.deps.bus, runtime.deps.rate_limiter
        assert isinstance(bus, RedisBus) and isinstance(limiter, RedisRateLimiter)
        sub = await bus.subscribe("t.runtime", "g", "c")
        await bus.publish("t.runtime", b"hello")
        got = await sub.next(timeout=5)
        assert got is not None and got.payload == b"hello"
        assert (await limiter.hit("k", Rate(limit=1, period=60))).allowed
        assert runtime.redis is not None
        keys = {k.decode() if isinstance(k, bytes) else k for k in await runtime.redis.keys(f"{redis_prefix}*")}
        assert keys == {f"{redis_prefix}bus:t.runtime", f"{redis_prefix}rl:k"}
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    ("redis", "expected"),
    [
        ({"url": "http://x"}, "must start with redis://"),
        ({"url": "redis://user:secret@host:6379/0"}, "must not carry credentials"),
    ],
)
def test_bad_redis_config_names_the_field(tmp_path: Path, redis: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(data_dir=tmp_path, redis=redis)


async def test_replicas_on_a_redis_bus_follow_each_others_revocations(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    """An access token revoked by one replica's accounts service is refused by another replica, including one
    that started after the revocation (it replays the retained topic)."""
    config = load_config(bus={"kind": "redis"}, redis={"url": redis_server.url, "key_prefix": redis_prefix})
    first = open_runtime(config.model_copy(update={"data_dir": tmp_path / "a"}))
    second = None
    try:
        revoker = AccessRevoker(first.deps.denylist, first.deps.bus, first.config.auth)
        tokens = first.deps.tokens
        signed_out = tokens.verify(tokens.issue("acc1", session_id="fam1").token)
        changed = tokens.verify(tokens.issue("acc2", session_id="fam2").token)
        await revoker.session("acc1", "fam1", accounts_pb2.REVOCATION_REASON_SIGNED_OUT)
        second = open_runtime(config.model_copy(update={"data_dir": tmp_path / "b"}))
        second.follow_revocations()
        await revoker.account("acc2", accounts_pb2.REVOCATION_REASON_PASSWORD_CHANGED)

        async def both_denied() -> None:
            assert second is not None
            denied = second.deps.denylist
            while not (  # noqa: ASYNC110 - the deny list has no event to wait on; this polls what it reports
                await denied.denied(signed_out.account_id, signed_out.session_id, signed_out.issued_at)
                and await denied.denied(changed.account_id, changed.session_id, changed.issued_at)
            ):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(both_denied(), timeout=30)  # what the follower reports; 30 s is only a backstop
        assert not await second.deps.denylist.denied("acc3", "fam3", changed.issued_at)
    finally:
        await first.close()
        if second is not None:
            await second.close()


async def test_replicas_with_redis_state_share_one_deny_list(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    """``[state] kind = "redis"``: a revocation written by one replica is in the list another replica reads at
    once (no follower, nothing to wait for), and the list's keys sit under the ``[redis]`` prefix."""
    config = load_config(
        bus={"kind": "redis"}, state={"kind": "redis"}, redis={"url": redis_server.url, "key_prefix": redis_prefix}
    )
    first = open_runtime(config.model_copy(update={"data_dir": tmp_path / "a"}))
    second = open_runtime(config.model_copy(update={"data_dir": tmp_path / "b"}))
    try:
        assert isinstance(first.deps.denylist, RedisDenyList) and isinstance(second.deps.denylist, RedisDenyList)
        second.follow_revocations()
        assert second.tasks == [], "a shared list needs no follower"
        revoker = AccessRevoker(first.deps.denylist, first.deps.bus, first.config.auth)
        tokens = first.deps.tokens
        signed_out = tokens.verify(tokens.issue("acc1", session_id="fam1").token)
        await revoker.session("acc1", "fam1", accounts_pb2.REVOCATION_REASON_SIGNED_OUT)
        assert await second.deps.denylist.denied(signed_out.account_id, signed_out.session_id, signed_out.issued_at)
        assert second.redis is not None
        assert await second.redis.exists(f"{redis_prefix}deny:s:fam1")
    finally:
        await first.close()
        await second.close()


async def test_redis_state_is_handed_to_services_only_with_state_kind_redis(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    """Steering shares its edges and problem evidence through ``deps.state_redis``: set with ``[state] kind =
    "redis"`` (with the ``[redis]`` prefix), left None with a Redis bus alone."""
    redis = {"url": redis_server.url, "key_prefix": redis_prefix}
    shared = open_runtime(load_config(data_dir=tmp_path / "a", state={"kind": "redis"}, redis=redis))
    bus_only = open_runtime(load_config(data_dir=tmp_path / "b", bus={"kind": "redis"}, redis=redis))
    try:
        assert shared.deps.state_redis is not None and shared.deps.state_redis is shared.redis
        assert shared.deps.redis_prefix == redis_prefix
        assert bus_only.deps.state_redis is None
    finally:
        await shared.close()
        await bus_only.close()
