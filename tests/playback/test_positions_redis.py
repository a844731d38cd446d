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
from services.common.ids import now_micros
from services.common.paging import PageTokens
from services.common.ports import free_port
from services.common.ratelimit import InMemoryRateLimiter
from services.common.redisclient import redis_client
from services.common.store.port import Row, Store, StoreUnavailable
from services.common.store.sqlite import SqliteStore
from services.common.timevalues import timestamp_of
from services.common.topics import PLAYBACK_UPDATE
from services.platform.localredis import RedisServer
from services.playback.config import ManifestHttpConfig, PlaybackConfig
from services.playback.positions import Positions, Report, update_event
from services.playback.positions_redis import WRITER_GROUP, RedisPositions
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


async def test_a_read_slides_the_positions_idle_expiry_and_a_missing_one_stays_missing(hot: RedisPositions) -> None:
    key = hot.key("a", "p", "t")
    assert await hot.get("a", "p", "t") is None
    assert not await hot._redis.exists(key), "a read of nothing leaves nothing behind"
    assert (await hot.update(_report(2_000, 20))).applied
    await hot._redis.pexpire(key, 1_000)  # nearly idled out
    got = await hot.get("a", "p", "t")
    assert got is not None and (got["event_time"], got["position_ms"]) == (2_000, 20)
    assert await hot._redis.pttl(key) > 500_000, "the read moved the expiry to the idle TTL (600 s) again"


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


class CountedPositions(Positions):
    """The store path's writes, counted (the reports the writer wrote); the first ``failures`` of them fail as an
    unreachable store does."""

    def __init__(self, store: Store, failures: int = 0) -> None:
        super().__init__(store, 0.95)
        self.written: list[Report] = []
        self.failures = failures

    async def write(self, report: Report, watch_time: int) -> Row:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the store is down (test)")
        self.written.append(report)
        return await super().write(report, watch_time)


@pytest.fixture
async def batched(
    any_store: Store, redis_server: RedisServer, redis_prefix: str
) -> AsyncIterator[tuple[RedisPositions, CountedPositions]]:
    """Positions on the session's redis-server in front of each store, with the writer's writes counted; sessions
    s1 and s2 of profile a/p started at 5 and 6."""
    await any_store.migrate(SCHEMA)
    for session, started in (("s1", 5), ("s2", 6)):
        await any_store.insert(
            SESSIONS, {"session_id": session, "account_id": "a", "profile_id": "p", "start_time": started}
        )
    counted = CountedPositions(any_store)
    bus = RedisBus.from_url(redis_server.url, prefix=f"{redis_prefix}bus:")
    yield RedisPositions(any_store, counted, bus, prefix=redis_prefix, idle_ttl=600), counted
    await bus.close()


async def publish(positions: RedisPositions, title: str, session: str, event_time: int, position_ms: int) -> str:
    """A playback.update event on the stream, as UpdatePosition appends it; its stream id."""
    report = Report("a", "p", title, session, 0, position_ms, 100_000, event_time)
    return await positions._bus.publish(PLAYBACK_UPDATE, update_event(report, False), key="p")


async def position(positions: RedisPositions, title: str) -> tuple[int, int, int] | None:
    """The store's position of a/p on ``title``: event time, position, watch time."""
    row = await positions._store.get(POSITIONS, {"account_id": "a", "profile_id": "p", "title_id": title})
    return None if row is None else (row["event_time"], row["position_ms"], row["watch_time"])


async def history(positions: RedisPositions) -> list[tuple[int, str, str, int, int]]:
    """The store's watch history of a/p, newest first: session start, title, session, event time, position."""
    page = await positions._store.query(WATCH_HISTORY, {"account_id": "a", "profile_id": "p"}, limit=20)
    return [(r["watched_at"], r["title_id"], r["session_id"], r["event_time"], r["position_ms"]) for r in page.rows]


def appended(message_id: str) -> int:
    """When Redis appended a message (its stream id's milliseconds), in microseconds: the watch time it writes."""
    return int(message_id.split("-")[0]) * 1000


async def test_a_batch_writes_each_sessions_newest_event_once(
    batched: tuple[RedisPositions, CountedPositions],
) -> None:
    """Fifty events of one session in one batch, newest in the middle of the stream: one write, the newest event
    (with the time Redis appended that event as watch time). An older one delivered in a later batch changes
    nothing."""
    positions, counted = batched
    order = [(n * 17) % 50 + 1 for n in range(50)]  # 1..50, the newest (50) neither first nor last
    ids = {n: await publish(positions, "t", "s1", n * 1_000, n * 100) for n in order}
    await drain_writer(positions)
    assert [r.event_time for r in counted.written] == [50_000], "one batch, one write: the session's newest"
    assert await position(positions, "t") == (50_000, 5_000, appended(ids[50]))
    assert await history(positions) == [(5, "t", "s1", 50_000, 5_000)]

    await publish(positions, "t", "s1", 20_000, 2_000)  # as a redelivery, or a replica's late event, brings it
    await drain_writer(positions)
    assert [r.event_time for r in counted.written] == [50_000, 20_000]  # written, and refused by the store
    assert await position(positions, "t") == (50_000, 5_000, appended(ids[50]))
    assert await history(positions) == [(5, "t", "s1", 50_000, 5_000)]


async def test_two_sessions_of_a_title_in_one_batch_each_get_their_history_entry(
    batched: tuple[RedisPositions, CountedPositions],
) -> None:
    """A rewatch within one batch: each session's newest event is written (its own history entry); the position
    is the newest of all. Malformed messages in the batch are dropped (and acknowledged: the writer drains)."""
    positions, counted = batched
    for session, event_time in (("s1", 1_000), ("s2", 3_000), ("s1", 2_000), ("s2", 4_000), ("s2", 2_500)):
        await publish(positions, "t", session, event_time, event_time // 10)
    await positions._bus.publish(PLAYBACK_UPDATE, b"\x0a\xff", key="p")  # not a PlaybackUpdateEvent
    bad_name = playback_pb2.PlaybackUpdateEvent(profile="nonsense", title="titles/t", session="playbackSessions/s1")
    await positions._bus.publish(PLAYBACK_UPDATE, bad_name.SerializeToString(), key="p")
    await drain_writer(positions)
    assert sorted((r.session_id, r.event_time) for r in counted.written) == [("s1", 2_000), ("s2", 4_000)]
    got = await position(positions, "t")
    assert got is not None and got[:2] == (4_000, 400)
    assert await history(positions) == [(6, "t", "s2", 4_000, 400), (5, "t", "s1", 2_000, 200)]


async def test_a_tombstoned_position_is_skipped_and_the_rest_of_its_batch_written(
    batched: tuple[RedisPositions, CountedPositions],
) -> None:
    """A title deleted (a tombstone in Redis): its events from before the delete are skipped, one after it is
    written, and so is the other title's newest event of the same batch."""
    positions, counted = batched
    assert not await positions.delete("a", "p", "t")  # nothing to forget yet: the tombstone is still written
    later = now_micros() + 60_000_000
    await publish(positions, "t", "s1", 1_000, 100)  # before the delete
    await publish(positions, "u", "s1", 1_200, 120)
    await publish(positions, "u", "s1", 1_500, 150)
    await publish(positions, "t", "s2", later, 700)  # after it
    await publish(positions, "t", "s1", 2_000, 200)  # before it
    await drain_writer(positions)
    assert sorted((r.title_id, r.session_id) for r in counted.written) == [("t", "s2"), ("u", "s1")]
    got = await position(positions, "t")
    assert got is not None and got[:2] == (later, 700)
    assert await history(positions) == [(6, "t", "s2", later, 700), (5, "u", "s1", 1_500, 150)]


async def test_a_batch_whose_write_failed_is_not_acknowledged_and_is_written_when_redelivered(
    batched: tuple[RedisPositions, CountedPositions],
) -> None:
    positions, counted = batched
    counted.failures = 1
    for title, session, event_time in (("t", "s1", 1_000), ("t", "s1", 2_000), ("t", "s2", 3_000), ("u", "s1", 1_500)):
        await publish(positions, title, session, event_time, event_time // 10)
    with pytest.raises(StoreUnavailable):  # one of the batch's three writes fails
        await positions._follow("w1", visibility_timeout=0.3)
    assert len(counted.written) == 2, "the batch's other writes ran to their end before the error"
    pending = await positions._redis.xpending(positions._stream, WRITER_GROUP)
    assert pending["pending"] == 4, "nothing of the batch is acknowledged"

    # another writer claims the batch once its visibility timeout has passed, and writes it whole
    await drain_writer(positions, visibility_timeout=0.3)
    assert len(counted.written) == 2 + 3
    t, u = await position(positions, "t"), await position(positions, "u")
    assert t is not None and t[:2] == (3_000, 300)
    assert u is not None and u[:2] == (1_500, 150)
    assert await history(positions) == [
        (6, "t", "s2", 3_000, 300),
        (5, "t", "s1", 2_000, 200),
        (5, "u", "s1", 1_500, 150),
    ]


async def test_the_writers_lag_counts_the_events_it_has_not_read_or_not_acknowledged(
    batched: tuple[RedisPositions, CountedPositions],
) -> None:
    positions, _ = batched
    assert await positions.lag() == 0, "no stream yet"
    ids = [await publish(positions, "t", "s1", event_time, 10) for event_time in (1_000, 2_000, 3_000, 4_000)]
    assert await positions.lag() == 4, "no writer group yet: the whole stream"
    subscription = await positions._bus.subscribe(
        PLAYBACK_UPDATE, WRITER_GROUP, "w1", from_beginning=True, visibility_timeout=30
    )
    try:
        batch = await subscription.next_batch(2)
        assert [m.id for m in batch] == ids[:2]
        assert await positions.lag() == 4, "two read and pending, two unread"
        await subscription.ack_many(batch)
        assert await positions.lag() == 2
        # an unread entry deleted from the middle of the stream: Redis's lag is no longer exact, so the unread
        # entries are counted
        await positions._redis.xdel(positions._stream, ids[2])
        assert await positions.lag() == 1
        await subscription.ack_many(await subscription.next_batch(10))
        assert await positions.lag() == 0
    finally:
        await subscription.close()


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
