"""Two steering replicas on one Redis (``[state] kind = "redis"``), sharing nothing else but the bus (on the same
Redis): an edge registered with one heartbeats to the other, both answer alike, player problem evidence split
between them demotes as one, a session started through one is steered by the other (the session directory), and a
session playback ends is refused by a real edge following either replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import timestamp_pb2
from pydantic import SecretStr

from edge.config import DataPlaneConfig, DirUpstream, EdgeNodeConfig
from edge.node import EdgeNode
from edge.revocations import RevocationFollower
from marquee.v1 import playback_pb2, steering_pb2_grpc
from marquee.v1 import steering_pb2 as pb
from services.common import urltokens
from services.common.auth import AccessTokens
from services.common.bus.redis import RedisBus
from services.common.config import ServerConfig, load_config
from services.common.deps import Dependencies
from services.common.errors import error_info
from services.common.paging import PageTokens
from services.common.ports import free_port
from services.common.ratelimit import InMemoryRateLimiter
from services.common.store.sqlite import SqliteStore
from services.common.tasks import cancel_all
from services.common.topics import PLAYBACK_SESSION_ENDED
from services.platform.admin import admin_metadata
from services.platform.localredis import RedisServer
from services.platform.runtime import local_config
from services.steering.config import HttpConfig, SteeringConfig
from services.steering.server import create_server

BOUND = 30.0  # only a guard against a hang: every wait polls what the replicas report


@dataclass
class Replica:
    stub: Any
    address: str
    http: str  # the public URL of its steering manifests


@dataclass
class Pair:
    a: Replica
    b: Replica
    metadata: tuple[tuple[str, str], ...]
    bus: RedisBus
    url_signing: Any
    start: Callable[..., Awaitable[Replica]]  # another replica, on the same Redis (or on ``redis_url``)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + BOUND
    while not await check():
        assert time.monotonic() < deadline, "the replicas did not get there"
        await asyncio.sleep(0.02)


def config(**overrides: Any) -> SteeringConfig:
    fields: dict[str, Any] = {
        "heartbeat_interval": 0.5,
        "heartbeat_timeout": 5.0,
        "state_refresh_interval": 0.2,
        "problem_threshold": 5,
        "problem_session_cap": 2,
        "problem_min_sessions": 3,
        "problem_min_accounts": 3,
    }
    return SteeringConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1), http=HttpConfig(port=0), **(fields | overrides)
    )


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Steering settings a test changes for both replicas."""
    return {}


@pytest.fixture
async def pair(
    tmp_path: Path, redis_server: RedisServer, redis_prefix: str, overrides: dict[str, Any]
) -> AsyncIterator[Pair]:
    """Two steering services, each with its own Redis client, store and rate limiter, on one data dir's keys."""
    platform = local_config(load_config(data_dir=tmp_path / "data"))
    async with contextlib.AsyncExitStack() as stack:
        bus = RedisBus(aioredis.Redis.from_url(redis_server.url), prefix=f"{redis_prefix}bus:", owns_client=True)
        stack.push_async_callback(bus.close)
        started = 0

        async def start(redis_url: str = redis_server.url) -> Replica:
            nonlocal started
            started += 1
            client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1)
            stack.push_async_callback(client.aclose)
            store = SqliteStore(tmp_path / f"{started}.db")
            stack.push_async_callback(store.close)
            replica_bus = RedisBus(
                aioredis.Redis.from_url(redis_server.url), prefix=f"{redis_prefix}bus:", owns_client=True
            )
            stack.push_async_callback(replica_bus.close)
            deps = Dependencies(
                store,
                replica_bus,
                InMemoryRateLimiter(),
                platform.auth,
                AccessTokens(platform.auth),
                PageTokens(b"k"),
                url_signing=platform.url_signing,
                state_redis=client,
                redis_prefix=redis_prefix,
            )
            service = await create_server(config(**overrides), deps)
            await service.start()
            stack.push_async_callback(service.stop)
            address = f"127.0.0.1:{service.grpc_port}"
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
            return Replica(steering_pb2_grpc.SteeringServiceStub(channel), address, service.sites["http"].public_url)

        a, b = await start(), await start()
        yield Pair(a, b, admin_metadata(platform), bus, platform.url_signing, start)


def edge_request(edge_id: str, port: int) -> pb.RegisterEdgeRequest:
    edge = pb.Edge(
        pathway_id=edge_id,
        base_uri=f"http://127.0.0.1:{port}/v/",
        zone="local",
        role=pb.EDGE_ROLE_EDGE,
        capacity_bps=10**9,
    )
    return pb.RegisterEdgeRequest(edge=edge, edge_id=edge_id)


async def pathways(r: Replica, p: Pair, session: str, account: str = "") -> list[str]:
    request = pb.GetSteeringRequest(
        session=f"playbackSessions/{session}",
        title="titles/t",
        client_address="10.0.0.1",
        account=f"accounts/{account}" if account else "",
    )
    reply = await r.stub.GetSteering(request, metadata=p.metadata)
    return [x.id for x in reply.pathways]


async def states(r: Replica, p: Pair) -> dict[str, int]:
    reply = await r.stub.ListEdges(pb.ListEdgesRequest(), metadata=p.metadata)
    return {e.pathway_id: e.state for e in reply.edges}


async def register_both(p: Pair) -> None:
    """Edges e1 and e2, registered through replica A."""
    for edge_id, port in (("e1", 9001), ("e2", 9002)):
        await p.a.stub.RegisterEdge(edge_request(edge_id, port), metadata=p.metadata)


async def until_b_knows_both(p: Pair) -> None:
    async def b_knows_both() -> bool:
        return set(await states(p.b, p)) == {"e1", "e2"}

    await until(b_knows_both)


async def test_an_edge_registered_on_one_replica_heartbeats_on_the_other(pair: Pair) -> None:
    p = pair
    await register_both(p)
    # straight away: the record is on Redis, so B takes the heartbeat instead of answering NOT_FOUND
    await p.b.stub.Heartbeat(pb.HeartbeatRequest(edge="edges/e1", healthy=True), metadata=p.metadata)
    await until_b_knows_both(p)
    assert await pathways(p.a, p, "s-1") == await pathways(p.b, p, "s-1")

    # e2 says, through B, that it is unhealthy: A stops listing it too
    await p.b.stub.Heartbeat(pb.HeartbeatRequest(edge="edges/e2", healthy=False), metadata=p.metadata)

    async def a_sees_e2_unhealthy() -> bool:
        return (await states(p.a, p)).get("e2") == pb.EDGE_STATE_UNHEALTHY

    await until(a_sees_e2_unhealthy)
    assert await pathways(p.a, p, "s-2") == ["e1"] == await pathways(p.b, p, "s-2")

    # an edge neither replica knows still gets NOT_FOUND (and registers again)
    for replica in (p.a, p.b):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await replica.stub.Heartbeat(pb.HeartbeatRequest(edge="edges/nobody", healthy=True), metadata=p.metadata)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

    # deregistered through B: gone from A as well, and its next heartbeat is NOT_FOUND on A
    await p.b.stub.DeregisterEdge(pb.DeregisterEdgeRequest(name="edges/e1"), metadata=p.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await p.a.stub.Heartbeat(pb.HeartbeatRequest(edge="edges/e1", healthy=True), metadata=p.metadata)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    async def a_forgot_e1() -> bool:
        return "e1" not in await states(p.a, p)

    await until(a_forgot_e1)


async def test_problem_evidence_split_across_replicas_demotes_as_one(pair: Pair) -> None:
    p = pair
    await register_both(p)
    await until_b_knows_both(p)
    first = (await pathways(p.a, p, "probe"))[0]

    async def report(r: Replica, session: str, account: str) -> None:
        await pathways(r, p, session, account)  # the session is steered by the replica it reports to
        request = pb.ReportPathwayProblemRequest(
            session=f"playbackSessions/{session}", pathway_id=first, kind=pb.PATHWAY_PROBLEM_KIND_STALL, count=2
        )
        await r.stub.ReportPathwayProblem(request, metadata=p.metadata)

    # two sessions and accounts on A: 4 capped problems, short of the 5 and the 3 sessions a demotion needs
    await report(p.a, "r-1", "acct-1")
    await report(p.a, "r-2", "acct-2")
    assert (await states(p.a, p))[first] == pb.EDGE_STATE_HEALTHY
    # the third on B tips it, on both replicas
    await report(p.b, "r-3", "acct-3")

    async def demoted_on_both() -> bool:
        a, b = await states(p.a, p), await states(p.b, p)
        return a[first] == b[first] == pb.EDGE_STATE_DEGRADED

    await until(demoted_on_both)
    other = "e2" if first == "e1" else "e1"
    assert (await pathways(p.a, p, "fresh-a"))[0] == other == (await pathways(p.b, p, "fresh-b"))[0]


async def test_an_ended_session_is_refused_by_an_edge_following_the_other_replica(tmp_path: Path, pair: Pair) -> None:
    p = pair
    origin = tmp_path / "origin" / "t" / "r"
    origin.mkdir(parents=True)
    (origin / "seg-1.m4s").write_bytes(b"x" * 1000)
    keys = {kid: SecretStr(s.get_secret_value()) for kid, s in p.url_signing.keys.items()}
    node = EdgeNode(
        EdgeNodeConfig(
            data_plane=DataPlaneConfig(
                name="edge-b", upstream=DirUpstream(root=tmp_path / "origin"), memory_bytes=1 << 20, token_keys=keys
            )
        )
    )
    follower_task: asyncio.Task[None] | None = None
    async with grpc.aio.insecure_channel(p.b.address) as to_b, grpc.aio.insecure_channel(p.a.address) as to_a:
        try:
            follower = RevocationFollower(lambda: [node], to_b, credentials=lambda: p.metadata)
            follower_task = asyncio.create_task(follower.run())
            await asyncio.wait_for(follower.connected.wait(), BOUND)
            expires = int(time.time()) + 300
            token = urltokens.keyring(p.url_signing).sign(urltokens.session_acl("gone", "t"), expires, "gone")
            url = f"{node.base_url}t/r/seg-1.m4s?token={token}"
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as reply:
                    assert reply.status == 200

                # playback (on any replica) ends the session: one event on the shared bus
                event = playback_pb2.SessionEndedEvent(
                    session="playbackSessions/gone", url_expire_time=timestamp_pb2.Timestamp(seconds=expires)
                )
                await p.bus.publish(PLAYBACK_SESSION_ENDED, event.SerializeToString(), key="gone")

                async def refused() -> bool:
                    async with http.get(url) as reply:
                        return reply.status == 410

                await until(refused)

            # the follower moves to A (another epoch): A gives it every revocation still in force, this one included
            moved = RevocationFollower(lambda: [], to_a, credentials=lambda: p.metadata)
            moved.epoch, moved.sequence = follower.epoch, follower.sequence
            request = pb.WatchRevocationsRequest(epoch=moved.epoch, after_sequence=moved.sequence)
            seen: set[str] = set()
            async with asyncio.timeout(BOUND):
                async for message in moved.stub.WatchRevocations(request, metadata=p.metadata):
                    assert message.epoch != follower.epoch
                    seen |= {s.session for s in message.sessions}
                    if "playbackSessions/gone" in seen:
                        break
        finally:
            if follower_task is not None:
                await cancel_all([follower_task])
            node.stop()


async def feed_has(r: Replica, p: Pair, session: str) -> None:
    """Follows ``r``'s revocation feed from its start until it gives ``session``."""
    request = pb.WatchRevocationsRequest()
    async with asyncio.timeout(BOUND):
        async for message in r.stub.WatchRevocations(request, metadata=p.metadata):
            if f"playbackSessions/{session}" in {s.session for s in message.sessions}:
                return


async def test_a_replica_started_after_a_session_ended_still_revokes_it(pair: Pair) -> None:
    p = pair
    event = playback_pb2.SessionEndedEvent(
        session="playbackSessions/early", url_expire_time=timestamp_pb2.Timestamp(seconds=int(time.time()) + 300)
    )
    await p.bus.publish(PLAYBACK_SESSION_ENDED, event.SerializeToString(), key="early")
    await feed_has(p.a, p, "early")
    late = await p.start()  # a replica (re)started after the end: it reads the topic from its oldest event
    await feed_has(late, p, "early")


@pytest.mark.parametrize("overrides", [{"heartbeat_timeout": 1.0}])
async def test_an_edge_silent_past_its_record_expiry_is_forgotten_by_every_replica(pair: Pair) -> None:
    p = pair
    await p.a.stub.RegisterEdge(edge_request("quiet", 9003), metadata=p.metadata)

    async def b_knows_it() -> bool:
        return "quiet" in await states(p.b, p)

    async def b_forgot_it() -> bool:
        return not await b_knows_it()

    await until(b_knows_it)
    await until(b_forgot_it)  # the record expired (2 * heartbeat_timeout) and the refresh dropped it
    for replica in (p.a, p.b):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await replica.stub.Heartbeat(pb.HeartbeatRequest(edge="edges/quiet", healthy=True), metadata=p.metadata)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await p.b.stub.RegisterEdge(edge_request("quiet", 9003), metadata=p.metadata)  # and it registers again
    await p.a.stub.Heartbeat(pb.HeartbeatRequest(edge="edges/quiet", healthy=True), metadata=p.metadata)


async def test_unreachable_shared_state_is_unavailable_not_internal(pair: Pair) -> None:
    p = pair
    cut_off = await p.start(redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    calls = [
        cut_off.stub.RegisterEdge(edge_request("e9", 9009), metadata=p.metadata),
        cut_off.stub.Heartbeat(pb.HeartbeatRequest(edge="edges/e9", healthy=True), metadata=p.metadata),
        cut_off.stub.DeregisterEdge(pb.DeregisterEdgeRequest(name="edges/e9"), metadata=p.metadata),
        cut_off.stub.GetSteering(  # a session start: the directory cannot be asked whether it exists elsewhere
            pb.GetSteeringRequest(session="playbackSessions/s", title="titles/t", client_address="10.0.0.1"),
            metadata=p.metadata,
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        info = error_info(err.value)
        assert info is not None and info.reason == "STEERING_STATE_UNAVAILABLE"
    async with aiohttp.ClientSession() as http:  # a player's reload of a session it does not hold: 503, not 500
        status, _ = await manifest(http, cut_off, p, "hls", "elsewhere")
        assert status == 503


async def manifest(http: aiohttp.ClientSession, r: Replica, p: Pair, kind: str, session: str) -> tuple[int, Any]:
    """A player's steering manifest reload from ``r``, with the session's signed URL token."""
    acl = urltokens.session_acl(session, "any-media")
    token = urltokens.keyring(p.url_signing).sign(acl, int(time.time()) + 300, session)
    async with http.get(f"{r.http}/steering/{kind}/{session}", params={"token": token}) as reply:
        return reply.status, await reply.json()


async def test_a_session_started_on_one_replica_is_steered_by_the_other(
    pair: Pair, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    p = pair
    await register_both(p)
    await until_b_knows_both(p)
    started = await pathways(p.a, p, "play-1", "acct-1")  # playback's StartPlayback, through A
    await pathways(p.a, p, "play-2", "acct-2")
    async with aiohttp.ClientSession() as http:
        # the player's reloads reach B, which never saw the session: it looks it up and steers it
        status, doc = await manifest(http, p.b, p, "hls", "play-1")
        assert status == 200, doc
        assert sorted(doc["PATHWAY-PRIORITY"]) == sorted(started)
        assert f"{p.b.http}/steering/hls/play-1?token=" in doc["RELOAD-URI"]
        status, doc = await manifest(http, p.b, p, "dash", "play-1")
        assert status == 200 and sorted(doc["SERVICE-LOCATION-PRIORITY"]) == sorted(started)

        # a problem report through B for a session only A has steered (the pathway is one its manifests list)
        report = pb.ReportPathwayProblemRequest(
            session="playbackSessions/play-2", pathway_id=started[0], kind=pb.PATHWAY_PROBLEM_KIND_STALL, count=1
        )
        await p.b.stub.ReportPathwayProblem(report, metadata=p.metadata)

        # the same session under another title is still refused, by the replica that adopted it
        request = pb.GetSteeringRequest(
            session="playbackSessions/play-2", title="titles/other", client_address="10.0.0.1"
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await p.b.stub.GetSteering(request, metadata=p.metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        # unknown to both replicas: 404 on B, over HTTP and gRPC
        assert (await manifest(http, p.b, p, "hls", "never-started"))[0] == 404
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await p.b.stub.ReportPathwayProblem(
                pb.ReportPathwayProblemRequest(
                    session="playbackSessions/never-started", pathway_id="e1", kind=pb.PATHWAY_PROBLEM_KIND_STALL
                ),
                metadata=p.metadata,
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        # playback ends play-1 (one event on the bus): B, which holds it, answers 410; so does A, and the directory
        # marks it ended for any replica that never saw it
        event = playback_pb2.SessionEndedEvent(
            session="playbackSessions/play-1", url_expire_time=timestamp_pb2.Timestamp(seconds=int(time.time()) + 300)
        )
        await p.bus.publish(PLAYBACK_SESSION_ENDED, event.SerializeToString(), key="play-1")

        async def ended_on_b() -> bool:
            return (await manifest(http, p.b, p, "hls", "play-1"))[0] == 410

        await until(ended_on_b)
        assert (await manifest(http, p.a, p, "dash", "play-1"))[0] == 410
        assert await redis_client.exists(f"{redis_prefix}steering:ended:play-1") == 1
        late = await p.start()  # a replica that never held either session

        async def late_steers_play_2() -> bool:  # once its first refresh of the edges is in
            return (await manifest(http, late, p, "hls", "play-2"))[0] == 200

        await until(late_steers_play_2)
        assert (await manifest(http, late, p, "hls", "play-1"))[0] == 410


@pytest.mark.parametrize(
    "record",
    [
        b"{not json",
        b"[]",
        b'{"session": "someone-else", "title": "t", "client": "10.0.0.1", "country": "", "zone": "",'
        b' "account": "", "pathways": {}}',
        b'{"session": "bad", "title": "t", "client": "not an address", "country": "", "zone": "",'
        b' "account": "", "pathways": {}}',
        b'{"session": "bad", "title": "t", "client": "10.0.0.1", "country": "", "zone": "",'
        b' "account": "", "pathways": {"e1": 5}}',
        b"[" * 20_000 + b"]" * 20_000,
        b"x" * 100_000,
    ],
    ids=["not-json", "not-an-object", "another-session", "bad-address", "bad-pathways", "deep", "too-large"],
)
async def test_a_corrupt_directory_record_is_an_unknown_session(
    pair: Pair, redis_client: aioredis.Redis, redis_prefix: str, record: bytes
) -> None:
    p = pair
    await p.a.stub.RegisterEdge(edge_request("e1", 9001), metadata=p.metadata)
    now_ms = int(time.time() * 1000)
    await redis_client.hset(f"{redis_prefix}steering:session:bad", mapping={"facts": record, "seen": now_ms})
    good = b'{"session": "good", "title": "t", "client": "10.0.0.1", "country": "", "zone": "", "account": "",'
    good += b' "pathways": {}}'
    await redis_client.hset(f"{redis_prefix}steering:session:good", mapping={"facts": good, "seen": now_ms})
    async with aiohttp.ClientSession() as http:
        status, doc = await manifest(http, p.b, p, "hls", "bad")
        assert status == 404, doc

        async def good_is_steered() -> bool:  # the same layout, well formed (once B's snapshot has the edge)
            return (await manifest(http, p.b, p, "hls", "good"))[0] == 200

        await until(good_is_steered)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await p.b.stub.ReportPathwayProblem(
            pb.ReportPathwayProblemRequest(
                session="playbackSessions/bad", pathway_id="e1", kind=pb.PATHWAY_PROBLEM_KIND_ERROR
            ),
            metadata=p.metadata,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
