"""The session directory on a real Redis, below the services: replicas (each a ``Steering`` with its
``SharedSessions`` front) share sessions' facts and ends through it and nothing else (no bus here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from services.steering.config import SteeringConfig
from services.steering.directory import Ended, LocalDirectory
from services.steering.directory_redis import RedisDirectory
from services.steering.registry import EdgeRecord, Role
from services.steering.server import LOCAL_ZONES
from services.steering.sessions import SharedSessions
from services.steering.steerer import BadInput, SessionEnded, Steering, UnknownSession
from services.steering.zones import CoverageZones

BOUND = 10.0  # only a guard against a hang
CONFIG = SteeringConfig(session_idle_timeout=1.0, session_refresh_interval=0.1, ended_session_memory=60.0)


def replica(client: aioredis.Redis | None, prefix: str, config: SteeringConfig = CONFIG) -> SharedSessions:
    steering = Steering(config, CoverageZones.from_dict(LOCAL_ZONES), shared_sessions=client is not None)
    for n in (1, 2):
        steering.registry.register(EdgeRecord(f"e{n}", f"e{n}", f"http://e{n}.test/v/", "local", Role.EDGE, 10**9))
    if client is None:
        return SharedSessions(steering, LocalDirectory(), config.session_refresh_interval)
    directory = RedisDirectory(
        client,
        prefix=f"{prefix}steering:",
        idle_timeout=config.session_idle_timeout,
        refresh_interval=config.session_refresh_interval,
        ended_memory=config.ended_session_memory,
    )
    return SharedSessions(steering, directory, config.session_refresh_interval)


async def until_raises(call: Callable[[], object], error: type[Exception]) -> None:
    deadline = time.monotonic() + BOUND
    while True:
        try:
            result = call()
            if asyncio.iscoroutine(result):
                await result
        except error:
            return
        assert time.monotonic() < deadline, f"never raised {error.__name__}"
        await asyncio.sleep(0.02)


async def test_any_replica_steers_a_session_another_started(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    a, b, c = (replica(redis_client, redis_prefix) for _ in range(3))
    first = await a.steer("s-1", title_id="t", client="10.0.0.1", country="GB", account="acct")
    adopted = await b.steer("s-1", current_pathway="e1", throughput_bps=10.0)  # a poor measurement: demoted on B
    s = adopted.session
    assert (s.title_id, str(s.client), s.country, s.zone, s.account) == ("t", "10.0.0.1", "GB", "local", "acct")
    assert s.known_pathways == first.session.known_pathways
    assert [p.pathway_id for p in adopted.pathways][-1] == "e1"
    zone, report = await c.report_problem("s-1", "e2", 1)
    assert (zone, report.account) == ("local", "acct")

    # reloads within the refresh interval write nothing; the record's time moves only once it has passed
    key = f"{redis_prefix}steering:session:s-1"
    seen = await redis_client.hget(key, "seen")
    await b.steer("s-1")
    assert await redis_client.hget(key, "seen") == seen
    await asyncio.sleep(CONFIG.session_refresh_interval)
    await b.steer("s-1")
    assert await redis_client.hget(key, "seen") != seen

    # ended through A (no bus): C, which holds it, learns it at its next write; a replica that never held it at once
    await a.end("s-1")
    with pytest.raises(SessionEnded):
        await replica(redis_client, redis_prefix).steer("s-1")
    with pytest.raises(SessionEnded):
        await replica(redis_client, redis_prefix).steer("s-1", title_id="t", client="10.0.0.1")  # not restarted
    await until_raises(lambda: b.steer("s-1"), SessionEnded)


async def test_a_session_idle_on_every_replica_has_ended(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    a, b = replica(redis_client, redis_prefix), replica(redis_client, redis_prefix)
    await a.steer("idle", title_id="t", client="10.0.0.1")
    deadline = time.monotonic() + CONFIG.session_idle_timeout
    while time.monotonic() < deadline:  # steered through B only: A's copy goes idle, the session does not
        await b.steer("idle")
        await asyncio.sleep(0.05)
    await a.steer("idle")  # A dropped its idle copy (not ended) and adopts it again
    assert await a.directory.lookup("idle") is not Ended.ENDED
    deadline = time.monotonic() + BOUND
    while await a.directory.lookup("idle") is not Ended.ENDED:  # nobody steers it now (a probe would)
        assert time.monotonic() < deadline, "never went idle"
        await asyncio.sleep(0.05)
    with pytest.raises(SessionEnded):
        await replica(redis_client, redis_prefix).steer("idle")


async def test_session_ids_are_checked_before_any_key(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    a = replica(redis_client, redis_prefix)
    for bad in ("", "a/b", "x" * 129, "*", "a b"):
        with pytest.raises(BadInput):
            await a.steer(bad)
        with pytest.raises(BadInput):
            await a.report_problem(bad, "e1", 1)
    assert await redis_client.keys(f"{redis_prefix}*") == []


async def test_the_memory_directory_keeps_one_process_as_it_was(redis_prefix: str) -> None:
    a, b = replica(None, redis_prefix), replica(None, redis_prefix)
    await a.steer("m-1", title_id="t", client="10.0.0.1")
    assert [p.pathway_id for p in (await a.steer("m-1")).pathways]
    with pytest.raises(UnknownSession):
        await b.steer("m-1")  # nothing is shared
    await a.end("m-1")
    with pytest.raises(SessionEnded):
        await a.steer("m-1")
