"""The durability contract of positions on Redis (``[services.playback] positions = "redis"``): an update is
acknowledged once Redis has it, and Redis runs with AOF. With ``appendfsync always`` every acknowledged update
survives redis-server being killed with SIGKILL: after a restart on the same directory each one is read back
through the service, and is in the store once the positions-writer drained the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError

from marquee.v1 import playback_pb2
from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.bus.redis import RedisBus
from services.common.config import AuthConfig, ConfigError, RedisConfig, ServerConfig
from services.common.deps import Dependencies
from services.common.errors import Unavailable
from services.common.paging import PageTokens
from services.common.ratelimit import InMemoryRateLimiter
from services.common.redisclient import redis_client
from services.common.store.sqlite import SqliteStore
from services.common.timevalues import timestamp_of
from services.common.topics import PLAYBACK_UPDATE
from services.platform.localredis import RedisServer, free_port
from services.playback.config import ManifestHttpConfig, PlaybackConfig
from services.playback.positions import Positions, Report, update_event
from services.playback.positions_redis import RedisPositions
from services.playback.schema import POSITIONS, SCHEMA, SESSIONS, WATCH_HISTORY
from services.playback.server import open_positions
from tests.edge.conftest import TITLE
from tests.playback.conftest import drain_writer, playback_stack

VIEWERS = 8  # accounts, one profile and one session each
UPDATES = 25  # acknowledged updates per session before the kill
PREFIX = "marquee:"  # the default [redis] key_prefix, what the stack's service uses


def _at(ms: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d


async def lag(positions: RedisPositions) -> int:
    """The writer's lag; a pooled connection to the killed server fails once, and the next one reconnects."""
    try:
        return await positions.lag()
    except RedisConnectionError:
        return await positions.lag()


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """A redis-server of the test's own with AOF on (appendfsync always) in a directory of its own; a test that
    restarts it appends the new server, and every one still running is stopped at the end."""
    servers = [RedisServer(tmp_path / "redis", appendonly=True, appendfsync="always")]
    servers[0].start()
    yield servers
    for server in servers:
        server.stop()


async def test_every_acknowledged_update_survives_redis_sigkill(
    tmp_path: Path, origin: Path, aof_redis: list[RedisServer]
) -> None:
    first = aof_redis[0]
    store = SqliteStore(tmp_path / "store.db")
    client = redis_client(RedisConfig(url=first.url))  # the services' client, as [redis] makes it
    bus = RedisBus(client, prefix=f"{PREFIX}bus:")
    config = PlaybackConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1),
        http=ManifestHttpConfig(port=0),
        positions="redis",
    )
    acked: dict[str, tuple[int, int]] = {}  # profile name -> (position ms, event time) of its last acknowledged update
    try:
        async with playback_stack(tmp_path, origin, config, store, bus=bus) as p:
            sessions = []
            for n in range(VIEWERS):
                md = p.caller(f"acct-d{n}", "p1")
                profile = f"accounts/acct-d{n}/profiles/p1"
                started = await p.stub.StartPlayback(
                    playback_pb2.StartPlaybackRequest(title=f"titles/{TITLE}", profile=profile), metadata=md
                )
                sessions.append((profile, started.session.name, md))
            base = 1_700_000_000_000_000

            async def report(profile: str, session: str, md: tuple[tuple[str, str], ...]) -> None:
                for i in range(1, UPDATES + 1):
                    event_time = base + i * 1000
                    reply = await p.stub.UpdatePosition(
                        playback_pb2.UpdatePositionRequest(
                            session=session, position=_at(i * 100), event_time=timestamp_of(event_time)
                        ),
                        metadata=md,
                    )
                    assert reply.applied
                    acked[profile] = (i * 100, event_time)

            await asyncio.gather(*(report(*s) for s in sessions))
            first.kill()  # SIGKILL: only what the AOF's fsync policy wrote survives
            restarted = RedisServer(first.directory, port=first.port, appendonly=True, appendfsync="always")
            aof_redis.append(restarted)
            restarted.start()  # on the same directory: it replays the AOF

            read_back, retried = 0, 0
            for profile, _, md in sessions:
                request = playback_pb2.GetPositionRequest(profile=profile, title=f"titles/{TITLE}")
                while True:  # a pooled connection to the killed server fails once (UNAVAILABLE): a client retries
                    try:
                        got = await p.stub.GetPosition(request, metadata=md)
                        break
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() != grpc.StatusCode.UNAVAILABLE:
                            raise
                        retried += 1
                assert (got.position.position.ToMilliseconds(), got.position.event_time.ToMicroseconds()) == acked[
                    profile
                ], f"an acknowledged update of {profile} was lost"
                read_back += 1

            # the service's writer (it retries while Redis is away) drains the stream into the store
            watcher = RedisPositions(store, Positions(store, 0.95), bus, prefix=PREFIX, idle_ttl=60)
            while await lag(watcher) > 0:  # noqa: ASYNC110 - polls what Redis reports
                await asyncio.sleep(0.05)
            in_store = 0
            for n in range(VIEWERS):
                key = {"account_id": f"acct-d{n}", "profile_id": "p1", "title_id": TITLE}
                profile = f"accounts/acct-d{n}/profiles/p1"
                row = await store.get(POSITIONS, key)
                assert row is not None
                assert (row["position_ms"], row["event_time"]) == acked[profile]
                history = await store.query(WATCH_HISTORY, {"account_id": f"acct-d{n}", "profile_id": "p1"}, limit=5)
                assert [(r["position_ms"], r["event_time"]) for r in history.rows] == [acked[profile]]
                in_store += 1
            stream = await client.xlen(bus.stream(PLAYBACK_UPDATE))
            print(
                f"acknowledged {VIEWERS * UPDATES} updates ({VIEWERS} positions), read back after SIGKILL {read_back}"
                f" ({retried} calls retried), in the store {in_store}, stream entries kept {stream}"
            )
            assert stream == VIEWERS * UPDATES, "every acknowledged update's event survived with it"
    finally:
        await bus.close()
        await client.aclose()
        await store.close()


@pytest.fixture
async def hot(tmp_path: Path, redis_server: RedisServer, redis_prefix: str) -> AsyncIterator[RedisPositions]:
    """Positions on the session's redis-server (keys of the test's own) in front of a SQLite store."""
    store = SqliteStore(tmp_path / "hot.db")
    await store.migrate(SCHEMA)
    await store.insert(SESSIONS, {"session_id": "s1", "account_id": "a", "profile_id": "p", "start_time": 5})
    bus = RedisBus.from_url(redis_server.url, prefix=f"{redis_prefix}bus:")
    yield RedisPositions(store, Positions(store, 0.95), bus, prefix=redis_prefix, idle_ttl=600)
    await bus.close()
    await store.close()


def _report(event_time: int, position_ms: int) -> Report:
    return Report("a", "p", "t", "s1", 5, position_ms, 100_000, event_time)


async def test_a_position_gone_from_redis_is_seeded_from_the_store(hot: RedisPositions) -> None:
    """An idled-out key: the next report is compared with the store's position, as the store would compare it."""
    assert (await hot.update(_report(2_000, 20))).applied
    await drain_writer(hot)
    await hot._redis.delete(hot.key("a", "p", "t"))  # as if it had idled out
    late = await hot.update(_report(1_000, 10))
    assert not late.applied and late.row["position_ms"] == 20
    got = await hot.get("a", "p", "t")
    assert got is not None and got["event_time"] == 2_000
    assert (await hot.update(_report(3_000, 30))).applied


async def test_the_writer_is_idempotent_and_order_free(hot: RedisPositions) -> None:
    """Events persisted twice and newest first leave the store on the newest one."""
    events = [
        playback_pb2.PlaybackUpdateEvent.FromString(update_event(_report(t, t // 100), False))
        for t in (1_000, 2_000, 3_000)
    ]
    for message_id, event in zip(
        ["3-0", "2-0", "1-0", "3-0", "1-0"], [events[2], events[1], events[0], events[2], events[0]], strict=True
    ):
        assert await hot.persist(event, message_id)
    row = await hot._store.get(POSITIONS, {"account_id": "a", "profile_id": "p", "title_id": "t"})
    assert row is not None and (row["event_time"], row["position_ms"]) == (3_000, 30)
    entry = await hot._store.get(
        WATCH_HISTORY, {"account_id": "a", "profile_id": "p", "watched_at": 5, "title_id": "t"}
    )
    assert entry is not None and entry["event_time"] == 3_000


async def test_redis_unreachable_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "down.db")
    await store.migrate(SCHEMA)
    bus = RedisBus.from_url(f"redis://127.0.0.1:{free_port()}/0")
    positions = RedisPositions(store, Positions(store, 0.95), bus, prefix="x:", idle_ttl=60)
    try:
        with pytest.raises(Unavailable) as raised:
            await positions.update(_report(1_000, 10))
        assert raised.value.reason == "POSITIONS_UNAVAILABLE"
    finally:
        await bus.close()
        await store.close()


def test_positions_on_redis_need_the_redis_bus(tmp_path: Path) -> None:
    """The write-behind stream is the Redis bus's playback.update: an in-process bus is a configuration error."""
    config = PlaybackConfig(positions="redis")
    store = SqliteStore(tmp_path / "cfg.db")
    auth = AuthConfig(keys={"k": SecretStr("x" * 32)}, signing_kid="k")
    deps = Dependencies(store, InMemoryBus(), InMemoryRateLimiter(), auth, AccessTokens(auth), PageTokens(b"p"))
    with pytest.raises(ConfigError, match='bus\\] kind = "redis"'):
        open_positions(config, deps)
    assert isinstance(open_positions(config.model_copy(update={"positions": "store"}), deps), Positions)
