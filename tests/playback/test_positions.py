"""Positions and watch history on both stores, written straight to the store or on Redis with write-behind (the
``positions-writer`` drained before the store is read): last write wins by the client's event time, with two
processes writing the same position concurrently (property test), and rewatches kept as their own history
entries."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.bus.redis import RedisBus
from services.common.config import CqlConfig
from services.common.store.port import Store
from services.platform.localredis import RedisServer
from services.playback.positions import Positions, Report
from services.playback.positions_redis import RedisPositions
from services.playback.schema import POSITIONS, SCHEMA, SESSIONS, WATCH_HISTORY
from tests.cql import unique_prefix
from tests.playback.conftest import drain_writer

ACCOUNT, PROFILE, STARTED = "acct-p", "prof-p", 1_000
RUNTIME_MS = 7_200_000


def _open(kind: str, location: str, prefix: str) -> Store:
    if kind == "sqlite":
        from services.common.store.sqlite import SqliteStore

        return SqliteStore(Path(location))
    from services.common.store.cql import CqlStore

    return CqlStore(CqlConfig(contact_points=[location], keyspace_prefix=prefix, speculative_executions=0))


@pytest.fixture(params=["store", "redis"])
def positions_kind(request: pytest.FixtureRequest) -> str:
    """Positions written to the store, or to Redis with write-behind (services.playback.positions)."""
    kind: str = request.param
    return kind


@pytest.fixture
def redis_at(positions_kind: str, request: pytest.FixtureRequest, redis_prefix: str) -> tuple[str, str]:
    """The Redis server's URL and a key prefix of the test's own ("" without Redis)."""
    if positions_kind == "store":
        return "", ""
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url, redis_prefix


@asynccontextmanager
async def open_positions(store: Store, url: str, prefix: str) -> AsyncIterator[Positions | RedisPositions]:
    """Positions on ``store``, or on Redis at ``url`` (keys under ``prefix``) with the store behind it."""
    positions = Positions(store, 0.95)
    if not url:
        yield positions
        return
    bus = RedisBus.from_url(url, prefix=f"{prefix}bus:")
    try:
        yield RedisPositions(store, positions, bus, prefix=prefix, idle_ttl=600)
    finally:
        await bus.close()


async def drain(positions: Positions | RedisPositions) -> None:
    """Run the positions-writer until it has persisted every event of the stream (nothing on the store path)."""
    if isinstance(positions, RedisPositions):
        await drain_writer(positions)


async def add_session(store: Store, session_id: str, started: int) -> None:
    """The session row the writer reads a history entry's start from (StartPlayback writes it in the service)."""
    await store.insert(
        SESSIONS, {"session_id": session_id, "account_id": ACCOUNT, "profile_id": PROFILE, "start_time": started}
    )


def _report(title: str, event_time: int, position_ms: int) -> Report:
    return Report(ACCOUNT, PROFILE, title, "session-1", STARTED, position_ms, RUNTIME_MS, event_time)


def _writer(conn: Connection, kind: str, location: str, prefix: str, redis: tuple[str, str]) -> None:
    """A process with its own store (and Redis) connections for the whole test, doing what it is sent:
    ``("update", title, reports)`` applies the reports one at a time and answers whether each was applied;
    ``("session",)`` adds the session row; ``("check", title)`` answers the position read, then (the writer
    drained) the store's position row and history entry. ``None`` ends it."""

    async def serve() -> None:
        store = _open(kind, location, prefix)
        await store.migrate(SCHEMA)  # both writers at once: the migration runs once
        async with open_positions(store, *redis) as positions:
            loop = asyncio.get_running_loop()
            while (job := await loop.run_in_executor(None, conn.recv)) is not None:
                if job[0] == "update":
                    _, title, reports = job
                    conn.send([(await positions.update(_report(title, t, p))).applied for t, p in reports])
                elif job[0] == "session":
                    await add_session(store, "session-1", STARTED)
                    conn.send(None)
                else:
                    conn.send(await _check(store, positions, job[1]))
        await store.close()

    asyncio.run(serve())


async def _check(store: Store, positions: Positions | RedisPositions, title: str) -> tuple[object, object, object]:
    hot = await positions.get(ACCOUNT, PROFILE, title)
    await drain(positions)
    position = await store.get(POSITIONS, {"account_id": ACCOUNT, "profile_id": PROFILE, "title_id": title})
    key = {"account_id": ACCOUNT, "profile_id": PROFILE, "watched_at": STARTED, "title_id": title}
    entry = await store.get(WATCH_HISTORY, key)
    return hot, position, entry


class Writer:
    """One writer process's end of the pipe. Once an answer did not come (pytest-timeout interrupted the wait:
    the process is stuck), every later ``ask`` fails at once, so hypothesis's replay of the failing example
    cannot wait on it forever."""

    stuck = False

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe

    def send(self, job: object) -> None:
        self.pipe.send(job)

    def answer(self) -> Any:
        if Writer.stuck:
            raise AssertionError("a writer process stopped answering earlier in this test")
        Writer.stuck = True
        answer = self.pipe.recv()
        Writer.stuck = False
        return answer


@pytest.fixture
def writers(
    store_kind: str, redis_at: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[list[Writer]]:
    if store_kind == "sqlite":
        location, prefix = str(tmp_path / "positions.db"), ""
    else:
        location, prefix = request.getfixturevalue("cassandra").contact_point, unique_prefix()
    context = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for _ in range(2):
        ours, theirs = context.Pipe()
        proc = context.Process(target=_writer, args=(theirs, store_kind, location, prefix, redis_at), daemon=True)
        proc.start()
        theirs.close()  # the child's end is the child's: a child that dies ends our recv with EOFError
        pipes.append(ours)
        procs.append(proc)
    Writer.stuck = False
    pipes[0].send(("session",))
    pipes[0].recv()
    try:
        yield [Writer(pipe) for pipe in pipes]
    finally:
        for pipe, proc in zip(pipes, procs, strict=True):
            pipe.send(None)
            proc.join(60)


reports_strategy = st.lists(
    st.tuples(st.integers(1, 10**6), st.integers(0, RUNTIME_MS)), min_size=1, max_size=10, unique_by=lambda r: r[0]
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reports=reports_strategy, split=st.randoms())
def test_an_older_event_never_overwrites_a_newer_one_across_processes(
    writers: list[Writer], reports: list[tuple[int, int]], split: object
) -> None:
    title = uuid.uuid4().hex[:12]
    base = 1_700_000_000_000_000
    timed = [(base + t, p) for t, p in reports]
    halves: list[list[tuple[int, int]]] = [[], []]
    for r in timed:
        halves[split.random() < 0.5].append(r)  # type: ignore[attr-defined]
    for writer, half in zip(writers, halves, strict=True):
        writer.send(("update", title, half))
    applied = {
        r: ok for writer, half in zip(writers, halves, strict=True) for r, ok in zip(half, writer.answer(), strict=True)
    }
    newest = max(timed)
    assert applied[newest], "the newest report always reads itself back"
    writers[0].send(("check", title))
    hot, position, entry = writers[0].answer()
    assert hot is not None and (hot["event_time"], hot["position_ms"]) == newest, "the position read"
    assert position is not None and entry is not None
    assert (position["event_time"], position["position_ms"]) == newest
    assert (entry["event_time"], entry["position_ms"]) == newest


async def test_rewatches_are_kept_and_history_pages_are_slices(any_store: Store, redis_at: tuple[str, str]) -> None:
    async with open_positions(any_store, *redis_at) as positions:
        await rewatches(any_store, positions)


async def rewatches(any_store: Store, positions: Positions | RedisPositions) -> None:
    await any_store.migrate(SCHEMA)
    for n, title in enumerate(["a", "b", "a", "c", "a"]):  # "a" watched three times, in three sessions
        await add_session(any_store, f"s{n}", STARTED + n)
        report = Report(ACCOUNT, PROFILE, title, f"s{n}", STARTED + n, 1_000 * n, RUNTIME_MS, 10_000 + n)
        assert (await positions.update(report)).applied
    await drain(positions)
    seen, after, pages = [], None, 0
    while True:
        page = await positions.history(ACCOUNT, PROFILE, 2, after)
        assert len(page.rows) <= 2
        seen += [(r["title_id"], r["session_id"]) for r in page.rows]
        pages += 1
        if page.next is None:
            break
        after = page.next
    assert seen == [("a", "s4"), ("c", "s3"), ("a", "s2"), ("b", "s1"), ("a", "s0")], "newest first, rewatches kept"
    assert pages >= 3
    position = await positions.get(ACCOUNT, PROFILE, "a")
    assert position is not None and position["position_ms"] == 4_000, "one resume position per title: the latest"
    assert await positions.delete(ACCOUNT, PROFILE, "a")
    left = await positions.history(ACCOUNT, PROFILE, 10, None)
    assert [r["title_id"] for r in left.rows] == ["c", "b"]
    assert await positions.get(ACCOUNT, PROFILE, "a") is None
    assert not await positions.delete(ACCOUNT, PROFILE, "a")
