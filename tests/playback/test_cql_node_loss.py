"""A CQL node killed mid-stream: three Cassandra nodes on 127.0.0.1-3 (replication factor 3, small heaps) under a
steady stream of UpdatePosition, RateTitle and CreateReview calls; one node gets SIGKILL. Every acknowledged call
is readable afterwards, calls keep succeeding at LOCAL_QUORUM while it is down, a call that fails is UNAVAILABLE
with RetryInfo (never INTERNAL), and the node rejoins when restarted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from marquee.v1 import catalog_pb2, playback_pb2
from services.common.config import CqlConfig, ServerConfig
from services.common.store.cassandra_node import LocalCluster
from services.common.store.cql import CqlStore
from services.playback.config import ManifestHttpConfig, PlaybackConfig
from tests.cql import unique_prefix
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback, playback_stack

pytestmark = pytest.mark.slow

CALLS_BEFORE, CALLS_DOWN, CALLS_AFTER = 30, 60, 20  # per kind of call, in each phase
PROFILES = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("cluster"), size=3, heap_mb=512)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@dataclass
class Tally:
    acknowledged: int = 0
    failed: dict[str, int] = field(default_factory=lambda: {"before": 0, "down": 0, "after": 0})
    succeeded_down: int = 0

    def fail(self, phase: str, err: grpc.aio.AioRpcError) -> None:
        assert err.code() == grpc.StatusCode.UNAVAILABLE, f"{err.code()}: {err.details()}"
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
        assert status is not None, "UNAVAILABLE carries google.rpc.Status"
        retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert retry, "UNAVAILABLE carries RetryInfo"
        self.failed[phase] += 1


def _now() -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(int(time.time() * 1_000_000))
    return t


def _ms(ms: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d


async def test_a_node_killed_mid_stream_loses_no_acknowledged_call(
    tmp_path: Path, origin: Path, cluster: LocalCluster
) -> None:
    config = CqlConfig(
        contact_points=cluster.contact_points,
        replication_factor=3,
        keyspace_prefix=unique_prefix(),
        request_timeout=6.0,
    )
    store = CqlStore(config)
    # sessions outlive the node's restart however long a busy machine takes (no heartbeat is sent meanwhile):
    # this test is about the store, not leases
    playback_config = PlaybackConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1),
        http=ManifestHttpConfig(port=0),
        session_timeout=3600,
    )
    try:
        async with playback_stack(tmp_path, origin, playback_config, store) as p:
            await _stream(p, cluster, store)
    finally:
        await store.close()


async def _stream(p: Playback, cluster: LocalCluster, store: CqlStore) -> None:
    names = [f"accounts/acct-{i}/profiles/viewer-{i}" for i in range(PROFILES)]
    viewers = [p.caller(f"acct-{i}", f"viewer-{i}") for i in range(PROFILES)]
    sessions = []
    for name, md in zip(names, viewers, strict=True):
        started = await p.stub.StartPlayback(
            playback_pb2.StartPlaybackRequest(profile=name, title=f"titles/{TITLE}"), metadata=md
        )
        sessions.append(started.session.name)
    positions, ratings, reviews = Tally(), Tally(), Tally()
    acked_positions: dict[int, int] = {}  # viewer -> the last acknowledged position (they only grow)
    acked_ratings: dict[str, int] = {}  # rating name -> stars
    acked_reviews: set[str] = set()
    counter = {"position": 0, "rating": 0, "review": 0}

    async def update_position(phase: str) -> None:
        n = counter["position"] = counter["position"] + 1
        viewer = n % PROFILES
        position_ms = n * 10
        try:
            reply = await p.stub.UpdatePosition(
                playback_pb2.UpdatePositionRequest(
                    session=sessions[viewer], position=_ms(position_ms), event_time=_now()
                ),
                metadata=viewers[viewer],
                timeout=30,
            )
        except grpc.aio.AioRpcError as err:
            positions.fail(phase, err)
            return
        assert reply.applied
        acked_positions[viewer] = position_ms
        positions.acknowledged += 1
        positions.succeeded_down += phase == "down"

    async def rate(phase: str) -> None:
        n = counter["rating"] = counter["rating"] + 1
        name = f"titles/{TITLE}/ratings/rater-{n}"
        md = p.caller(f"acct-r{n}", f"rater-{n}")
        try:
            await p.catalog.RateTitle(catalog_pb2.RateTitleRequest(name=name, stars=1 + n % 5), metadata=md, timeout=30)
        except grpc.aio.AioRpcError as err:
            ratings.fail(phase, err)
            return
        acked_ratings[name] = 1 + n % 5
        ratings.acknowledged += 1
        ratings.succeeded_down += phase == "down"

    async def review(phase: str) -> None:
        n = counter["review"] = counter["review"] + 1
        md = p.caller(f"acct-v{n}", f"reviewer-{n}")
        try:
            made = await p.catalog.CreateReview(
                catalog_pb2.CreateReviewRequest(
                    parent=f"titles/{TITLE}", review=catalog_pb2.Review(text=f"review number {n}")
                ),
                metadata=md,
                timeout=30,
            )
        except grpc.aio.AioRpcError as err:
            reviews.fail(phase, err)
            return
        acked_reviews.add(made.review.name)
        reviews.acknowledged += 1
        reviews.succeeded_down += phase == "down"

    async def phase(name: str, calls: int) -> None:
        async def loop(call: object) -> None:
            for _ in range(calls):
                await call(name)  # type: ignore[operator]

        await asyncio.gather(loop(update_position), loop(rate), loop(review))

    await phase("before", CALLS_BEFORE)
    victim = cluster.nodes[2]
    killing = asyncio.create_task(asyncio.to_thread(victim.kill))  # SIGKILL while calls are in flight
    await phase("down", CALLS_DOWN)
    await killing
    await asyncio.to_thread(victim.start)  # the same data directory: it rejoins the ring
    assert await _sees_up(store, victim.host), "the restarted node rejoined"
    await phase("after", CALLS_AFTER)

    # every acknowledged call is readable
    for viewer, position_ms in acked_positions.items():
        got = await p.stub.GetPosition(
            playback_pb2.GetPositionRequest(profile=names[viewer], title=f"titles/{TITLE}"),
            metadata=viewers[viewer],
        )
        assert got.position.position.ToMilliseconds() >= position_ms
    read_ratings = 0
    for name, stars in acked_ratings.items():
        n = name.rsplit("-", 1)[1]
        got_rating = await p.catalog.GetRating(
            catalog_pb2.GetRatingRequest(name=name), metadata=p.caller(f"acct-r{n}", f"rater-{n}")
        )
        assert got_rating.rating.stars == stars
        read_ratings += 1
    listed: set[str] = set()
    token = ""
    while True:
        page = await p.catalog.ListReviews(
            catalog_pb2.ListReviewsRequest(parent=f"titles/{TITLE}", page_size=100, page_token=token), metadata=p.admin
        )
        listed |= {r.name for r in page.reviews}
        token = page.next_page_token
        if not token:
            break
    assert acked_reviews <= listed
    for kind, tally, read in (
        ("UpdatePosition", positions, f"the last of each of {len(acked_positions)} profiles"),
        ("RateTitle", ratings, str(read_ratings)),
        ("CreateReview", reviews, str(len(acked_reviews & listed))),
    ):
        print(
            f"\n{kind}: acknowledged {tally.acknowledged}, read back {read}, failed while the node was down"
            f" {tally.failed['down']} (before {tally.failed['before']}, after {tally.failed['after']}),"
            f" succeeded while it was down {tally.succeeded_down}"
        )
        assert tally.succeeded_down > 0, f"{kind} kept succeeding at LOCAL_QUORUM with a node down"


async def _sees_up(store: CqlStore, host: str) -> bool:
    """The driver reports the node up again (it follows the cluster's events), within the test's timeout."""
    assert store._cluster is not None
    while True:
        for h in store._cluster.metadata.all_hosts():
            if h.endpoint.address == host and h.is_up:
                return True
        await asyncio.sleep(0.2)
