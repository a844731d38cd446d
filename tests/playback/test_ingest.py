"""The native ingest front (services/playback/ingest.py) on a real redis-server: valid position reports of a
session the servicer admitted are answered natively with exactly what the servicer answers (the same reply,
the same position hash, the same ``playback.update`` event bytes), and every hostile or unusual call -- no token,
a tampered, expired or revoked one, another profile's token, an ended session, an invalid report -- reaches the
servicer and gets its error, with nothing written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from marquee.v1 import catalog_pb2, playback_pb2
from services.common.bus.redis import RedisBus
from services.common.config import GeoConfig, RedisConfig, ServerConfig
from services.common.denylist_redis import RedisDenyList
from services.common.peer import PEER_HEADER, SECRET_HEADER
from services.common.redisclient import redis_client
from services.common.store.sqlite import SqliteStore
from services.common.targets import channel_target
from services.common.timevalues import timestamp_of
from services.common.topics import PLAYBACK_UPDATE
from services.platform.localredis import RedisServer
from services.playback.config import ManifestHttpConfig, PlaybackConfig
from services.playback.ingest import IngestFront, front_on
from services.playback.positions import Report, update_event
from tests.common.mmdb_writer import write_country_db
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback, playback_stack
from tests.playback.test_playback import fails

PROFILE = "accounts/acct-n/profiles/p1"
BASE = 1_700_000_000_000_000  # event times, microseconds


def _at(ms: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d


def _report(session: str, ms: int, event_time: int) -> playback_pb2.UpdatePositionRequest:
    return playback_pb2.UpdatePositionRequest(session=session, position=_at(ms), event_time=timestamp_of(event_time))


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _front(p: Playback) -> IngestFront:
    assert p.service is not None
    front = front_on(p.service.grpc_port)
    assert front is not None, "the playback service has no native front"
    return front


@asynccontextmanager
async def _native_stack(
    tmp_path: Path, origin: Path, redis_server: RedisServer, prefix: str, geo_config: GeoConfig | None = None
) -> AsyncIterator[tuple[Playback, RedisDenyList]]:
    """The playback stack with positions, the bus and the deny list on Redis: its front listens."""
    redis = RedisConfig(url=redis_server.url)
    client = redis_client(redis)
    bus = RedisBus(client, prefix=f"{prefix}bus:")
    denylist = RedisDenyList(client, prefix=f"{prefix}deny:")
    config = PlaybackConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1),
        http=ManifestHttpConfig(port=0),
        positions="redis",
    )
    store = SqliteStore(tmp_path / "store.db")
    try:
        async with playback_stack(
            tmp_path,
            origin,
            config,
            store,
            geo_config,
            bus=bus,
            denylist=denylist,
            redis_server=redis,
            redis_prefix=prefix,
        ) as p:
            yield p, denylist
    finally:
        await bus.close()
        await client.aclose()
        await store.close()


@pytest.fixture
async def native(
    tmp_path: Path, origin: Path, redis_server: RedisServer, redis_prefix: str
) -> AsyncIterator[tuple[Playback, RedisDenyList]]:
    async with _native_stack(tmp_path, origin, redis_server, redis_prefix) as stack:
        yield stack


async def _start(p: Playback, account: str = "acct-n") -> tuple[str, tuple[tuple[str, str], ...]]:
    md = p.caller(account, "p1")
    profile = f"accounts/{account}/profiles/p1"
    started = await p.stub.StartPlayback(
        playback_pb2.StartPlaybackRequest(title=f"titles/{TITLE}", profile=profile), metadata=md
    )
    return started.session.name, md


async def test_valid_reports_are_answered_natively_as_the_servicer_answers_them(
    native: tuple[Playback, RedisDenyList], redis_prefix: str
) -> None:
    p, _ = native
    front = _front(p)
    session, md = await _start(p)
    first = await p.stub.UpdatePosition(_report(session, 1_000, BASE + 1_000), metadata=md)  # the servicer's
    assert front.stats()["served"] == 0 and front.stats()["declined_token"] == 1
    second = await p.stub.UpdatePosition(_report(session, 2_000, BASE + 2_000), metadata=md)  # the front's
    assert front.stats()["served"] == 1
    assert second.applied and second.position.ToMilliseconds() == 2_000 and not second.finished
    # the same lease, so the same expiry and URL token as the servicer's answer
    assert (second.expire_time, second.url_token) == (first.expire_time, first.url_token)

    # an older report is answered with the newer stored position, not applied (last write wins by event time)
    older = await p.stub.UpdatePosition(_report(session, 500, BASE + 1_500), metadata=md)
    assert (older.applied, older.position.ToMilliseconds()) == (False, 2_000)
    # the same report again is answered as applied (the stored event time is the report's) and writes nothing
    again = await p.stub.UpdatePosition(_report(session, 2_000, BASE + 2_000), metadata=md)
    assert (again.applied, again.position.ToMilliseconds()) == (True, 2_000)
    assert front.stats()["served"] == 3

    # read back through the servicer (GetPosition is forwarded)
    got = await p.stub.GetPosition(
        playback_pb2.GetPositionRequest(profile=PROFILE, title=f"titles/{TITLE}"), metadata=md
    )
    assert (got.position.position.ToMilliseconds(), got.position.event_time.ToMicroseconds()) == (2_000, BASE + 2_000)

    # the stream holds one event per applied report, byte for byte what the servicer's path appends
    assert isinstance(p.bus, RedisBus)
    entries = await p.bus.redis.xrange(p.bus.stream(PLAYBACK_UPDATE))
    payloads = [fields[b"p"] for _, fields in entries]
    session_id = session.split("/", 1)[1]
    first_event = playback_pb2.PlaybackUpdateEvent.FromString(payloads[0])  # appended by the servicer's path
    runtime_ms, region = first_event.runtime.ToMilliseconds(), first_event.region

    def event(ms: int, at: int) -> bytes:
        report = Report("acct-n", "p1", TITLE, session_id, 0, ms, runtime_ms, at, region)
        return update_event(report, False)

    assert payloads == [event(1_000, BASE + 1_000), event(2_000, BASE + 2_000)]


async def test_hostile_and_unusual_calls_get_the_servicers_errors_and_write_nothing(
    native: tuple[Playback, RedisDenyList],
) -> None:
    p, denylist = native
    front = _front(p)
    session, md = await _start(p)
    await p.stub.UpdatePosition(_report(session, 1_000, BASE + 1_000), metadata=md)  # admits token and session
    token = dict(md)["authorization"].split(" ", 1)[1]
    newer = _report(session, 9_000, BASE + 9_000)

    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    await fails(p.stub.UpdatePosition(newer), unauthenticated, "INVALID_TOKEN")  # no token
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    await fails(p.stub.UpdatePosition(newer, metadata=_bearer(tampered)), unauthenticated, "INVALID_TOKEN")
    expired = p.tokens.issue("acct-n", profile_id="p1", now=time.time() - 7200).token
    await fails(p.stub.UpdatePosition(newer, metadata=_bearer(expired)), unauthenticated, "TOKEN_EXPIRED")
    other = p.caller("acct-other", "p1")
    await fails(p.stub.UpdatePosition(newer, metadata=other), grpc.StatusCode.PERMISSION_DENIED)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    await fails(p.stub.UpdatePosition(_report(session, -1, BASE + 9_000), metadata=md), invalid)
    await fails(p.stub.UpdatePosition(_report(session, 10**9, BASE + 9_000), metadata=md), invalid)
    untimed = playback_pb2.UpdatePositionRequest(session=session, position=_at(9_000))
    await fails(p.stub.UpdatePosition(untimed, metadata=md), invalid)
    nowhere = _report("playbackSessions/nope", 9_000, BASE + 9_000)
    await fails(p.stub.UpdatePosition(nowhere, metadata=md), grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")

    # a token revoked after it was admitted: every replica's front reads the deny list on Redis on every call
    await denylist.deny_account("acct-n", issued_up_to=time.time(), until=time.time() + 3600)
    await fails(p.stub.UpdatePosition(newer, metadata=md), unauthenticated, "TOKEN_REVOKED")
    assert front.stats()["declined_revoked"] == 1

    # nothing above was written: a fresh token reads the first report back
    await asyncio.sleep(0.002)  # the next token's iat must come after the account-wide revocation's mark
    fresh = p.caller("acct-n", "p1")
    got = await p.stub.GetPosition(
        playback_pb2.GetPositionRequest(profile=PROFILE, title=f"titles/{TITLE}"), metadata=fresh
    )
    assert got.position.position.ToMilliseconds() == 1_000
    assert front.stats()["served"] == 0


async def test_an_ended_session_is_refused_by_the_servicer_not_served_by_the_front(
    native: tuple[Playback, RedisDenyList],
) -> None:
    p, _ = native
    front = _front(p)
    session, md = await _start(p)
    await p.stub.UpdatePosition(_report(session, 1_000, BASE + 1_000), metadata=md)
    await p.stub.UpdatePosition(_report(session, 2_000, BASE + 2_000), metadata=md)
    assert front.stats()["served"] == 1
    await p.stub.StopPlayback(playback_pb2.StopPlaybackRequest(session=session), metadata=md)
    late = p.stub.UpdatePosition(_report(session, 3_000, BASE + 3_000), metadata=md)
    await fails(late, grpc.StatusCode.FAILED_PRECONDITION, "SESSION_ENDED")
    assert front.stats()["served"] == 1 and front.stats()["declined_session"] == 1


async def test_the_backend_believes_the_clients_address_from_the_front_only(
    tmp_path: Path, origin: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    """StartPlayback's region comes from the caller's address: the front forwards the address it saw beside its
    secret, and strips what a client writes in those headers itself."""
    japan = "203.0.113.9"
    db = write_country_db(tmp_path / "countries.mmdb", {"203.0.113.0/24": "JP"})
    geo = GeoConfig(database=db, trusted_proxies=("127.0.0.1/32",), loopback_region="US")
    async with _native_stack(tmp_path, origin, redis_server, redis_prefix, geo) as (p, _):
        title = catalog_pb2.Title(name=f"titles/{TITLE}", licensed_regions=["JP"])
        mask = field_mask_pb2.FieldMask(paths=["licensed_regions"])
        await p.catalog.UpdateTitle(catalog_pb2.UpdateTitleRequest(title=title, update_mask=mask), metadata=p.admin)
        md = p.caller("acct-g", "p1")
        request = playback_pb2.StartPlaybackRequest(title=f"titles/{TITLE}", profile="accounts/acct-g/profiles/p1")
        # the front's address for the client (loopback, a trusted proxy here) reaches the servicer, which then
        # reads x-forwarded-for: a client in Japan plays
        started = await p.stub.StartPlayback(request, metadata=(*md, ("x-forwarded-for", japan)))
        stop = playback_pb2.StopPlaybackRequest(session=started.session.name)
        await p.stub.StopPlayback(stop, metadata=md)
        # a client claiming to be in Japan through the front's own headers is where it is: loopback, US
        forged = (*md, (PEER_HEADER, japan), (SECRET_HEADER, "0" * 32))
        await fails(p.stub.StartPlayback(request, metadata=forged), grpc.StatusCode.FAILED_PRECONDITION, "GEO_BLOCKED")
        assert _front(p).stats()["forwarded"] == 3  # every call went through the front


async def test_replicas_behind_fronts_are_reached_round_robin_with_health_checks(
    native: tuple[Playback, RedisDenyList],
) -> None:
    """What the gateway and every service do with [addresses] of several replicas (services.common.targets): the
    health-checked round-robin channel's calls pass the front's HTTP/2 checks (their :authority is one address)."""
    p, _ = native
    assert p.service is not None
    port = p.service.grpc_port
    target, options = channel_target(f"127.0.0.1:{port},127.0.0.1:{port}")
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), wait_for_ready=True, timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_request_above_the_message_limit_is_refused_before_anything_reads_it(
    native: tuple[Playback, RedisDenyList],
) -> None:
    p, _ = native
    front = _front(p)
    session, md = await _start(p)
    oversized = _report(session, 1_000, BASE + 1_000)
    oversized.session = "playbackSessions/" + "x" * (ServerConfig().max_receive_message_bytes + 1)
    before = front.stats()
    await fails(p.stub.UpdatePosition(oversized, metadata=md), grpc.StatusCode.RESOURCE_EXHAUSTED)
    after = front.stats()  # refused by the front itself: neither answered nor forwarded
    assert (after["served"], after["forwarded"]) == (before["served"], before["forwarded"])


def _update_position_metric(name: str, **labels: str) -> float:
    own = {"grpc_service": "marquee.v1.PlaybackService", "grpc_method": "UpdatePosition", **labels}
    return REGISTRY.get_sample_value(name, own) or 0.0


async def test_calls_answered_natively_count_in_the_rpc_metrics_beside_the_servicers(
    tmp_path: Path, origin: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    """The error-budget alerts divide server errors by marquee_grpc_server_handled_total: were the front's answers
    missing there, a service answering most reports natively would page on a handful of errors."""
    handled, timed = "marquee_grpc_server_handled_total", "marquee_grpc_server_handling_seconds_count"
    ok_before = _update_position_metric(handled, grpc_code="OK")
    timed_before = _update_position_metric(timed)
    async with _native_stack(tmp_path, origin, redis_server, redis_prefix) as (p, _):
        front = _front(p)
        session, md = await _start(p)
        for second in range(1, 6):
            await p.stub.UpdatePosition(_report(session, second * 1_000, BASE + second * 1_000), metadata=md)
        assert front.stats()["served"] == 4  # the first by the servicer, the rest by the front
        assert _update_position_metric(handled, grpc_code="OK") == ok_before + 5
        assert _update_position_metric(timed) == timed_before + 5
        within = _update_position_metric("marquee_grpc_server_handling_seconds_bucket", le="10.0")
        assert within == timed_before + 5  # the native histogram's buckets merge into the service's exactly
        assert _update_position_metric("marquee_grpc_server_handling_seconds_sum") > 0
    # the front stopped with the service: the totals keep its calls (a counter never goes down)
    assert _update_position_metric(handled, grpc_code="OK") == ok_before + 5
    assert _update_position_metric(timed) == timed_before + 5
