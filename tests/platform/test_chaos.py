"""Chaos on the distributed topology (`marquee up --distributed` on the session's Cassandra node and a Redis server
of this test's own, AOF everysec): under steady load (position updates, ratings, reviews, playback starts,
encoding jobs) one replica of every service is SIGKILLed, then the Redis server, while Chromium plays a title.

Clients retry what fails with UNAVAILABLE (and nothing else) until it succeeds. Afterwards every acknowledged write
reads back, through the gateway and, for positions written behind through Redis, from the store; every event is
applied once in effect (each encoding job done once and its title playable on every catalog replica, each
position's history entry written once); and the player kept playing. The counts are printed."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.protobuf.message import Message

from marquee.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    encoding_pb2,
    encoding_pb2_grpc,
    playback_pb2,
)
from services.common.config import CqlConfig, load_config
from services.common.store.cassandra_node import CassandraNode
from services.common.store.cql import CqlStore
from services.encoder.demo import make_master
from services.platform.admin import admin_metadata
from services.platform.localredis import RedisServer
from services.playback.schema import POSITIONS, SCHEMA
from tests.cql import unique_prefix
from tests.e2e.browser import Browser, missing_requirements
from tests.e2e.viewer import sign_in, watch
from tests.platform.distributed import gateway_sign_in, grpc_web, logs_size, playable_title, read_replicas, start
from tests.platform.test_up import wait_progressing

KILLED = ("accounts-1", "catalog-1", "playback-1", "recommendations-1", "steering-1", "encoder-1")
ENV = {
    "MARQUEE_SERVICES__ENCODER__DEMO__SYNTHETIC_SECONDS": "60",  # long enough to play through the chaos
    "MARQUEE_SERVICES__ACCOUNTS__DEMO__PLAN": "premium",  # four streams: the player's, the load's and spares
    "MARQUEE_SERVICES__GATEWAY__LIMITS__REQUESTS_PER_SECOND": "1000",
    "MARQUEE_SERVICES__GATEWAY__LIMITS__BURST": "1000",
}
JOBS = 3
RATED_TITLES = 12
MEDIA = "test-pattern"  # the 60 s synthetic demo master (the demo's clips last a few seconds)
# The video loops (so it plays through however long the chaos takes) and counts the seconds it has played.
PLAYED = """(() => {
  const v = document.querySelector('[data-testid=video]');
  v.loop = true;
  const m = window.__chaos = {played: 0, last: v.currentTime};
  window.setInterval(() => {
    const step = v.currentTime - m.last;
    if (step > 0 && step < 2) m.played += step;
    m.last = v.currentTime;
  }, 100);
  return true;
})()"""
M = TypeVar("M", bound=Message)
T = TypeVar("T")


@dataclass
class Viewer:
    gateway: str
    token: str
    account: str
    profile: str
    retried: list[str] = field(default_factory=list)

    def call(self, method: str, request: Message, reply: type[M]) -> M:
        """Retried on UNAVAILABLE until it succeeds, however long the platform takes to recover."""
        return grpc_web(self.gateway, method, request, reply, self.token, self.retried, attempts=None)


@dataclass
class Acked:
    """What the platform acknowledged, as the load's clients saw it."""

    updates: int = 0
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # title -> (event time µs, position ms)
    sessions: set[str] = field(default_factory=set)
    ratings: dict[str, int] = field(default_factory=dict)  # title -> last stars acknowledged
    rating_calls: int = 0
    reviews: dict[str, set[str]] = field(default_factory=dict)  # title -> review names
    stream_limit_waits: int = 0


class Load:
    """Steady load from threads of its own until stopped; ``ops`` counts acknowledged calls."""

    def __init__(self, viewer: Viewer, titles: list[str]) -> None:
        self.viewer, self.titles = viewer, titles
        self.acked = Acked()
        self.ops = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._guard, args=(f,)) for f in (self._plays, self._opinions)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=300)
        assert not self.errors, self.errors

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            while not self._stop.is_set():
                work()
        except BaseException as exc:
            self.errors.append(exc)

    def _plays(self) -> None:
        """A playback session on the next title: start, five position updates, stop."""
        v, a = self.viewer, self.acked
        title = self.titles[len(a.sessions) % len(self.titles)]
        while True:
            try:
                started = v.call(
                    "marquee.v1.PlaybackService/StartPlayback",
                    playback_pb2.StartPlaybackRequest(title=title, profile=v.profile),
                    playback_pb2.StartPlaybackResponse,
                )
                break
            except AssertionError as exc:  # a start retried after a lost answer holds a slot until it times out
                if "RESOURCE_EXHAUSTED" not in str(exc):
                    raise
                a.stream_limit_waits += 1
                time.sleep(1)
        session = started.session.name
        a.sessions.add(session)
        self.ops += 1
        for step in range(1, 6):
            update = playback_pb2.UpdatePositionRequest(session=session)
            update.position.FromMilliseconds(1_000 * step + len(a.sessions))
            update.event_time.GetCurrentTime()
            answer = v.call("marquee.v1.PlaybackService/UpdatePosition", update, playback_pb2.UpdatePositionResponse)
            assert answer.applied
            a.updates += 1
            a.positions[title] = (update.event_time.ToMicroseconds(), update.position.ToMilliseconds())
            self.ops += 1
        v.call(
            "marquee.v1.PlaybackService/StopPlayback",
            playback_pb2.StopPlaybackRequest(session=session),
            playback_pb2.StopPlaybackResponse,
        )

    def _opinions(self) -> None:
        """A rating (the stars change every round) and a review (with a request id, so a retry is one review)."""
        v, a = self.viewer, self.acked
        n = a.rating_calls
        title = self.titles[n % RATED_TITLES]
        stars = n // RATED_TITLES % 5 + 1
        v.call(
            "marquee.v1.CatalogService/RateTitle",
            catalog_pb2.RateTitleRequest(name=f"{title}/ratings/{v.profile.rsplit('/', 1)[1]}", stars=stars),
            catalog_pb2.RateTitleResponse,
        )
        a.ratings[title] = stars
        a.rating_calls += 1
        review = v.call(
            "marquee.v1.CatalogService/CreateReview",
            catalog_pb2.CreateReviewRequest(
                parent=title, review=catalog_pb2.Review(text=f"chaos review {n}"), request_id=uuid.uuid4().hex
            ),
            catalog_pb2.CreateReviewResponse,
        )
        a.reviews.setdefault(title, set()).add(review.review.name)
        self.ops += 2


def _retry_unavailable(call: Callable[[], T], retried: list[str]) -> T:
    for attempt in itertools.count(1):
        try:
            return call()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            retried.append(f"encoder: {exc.details()}")
            time.sleep(min(0.05 * attempt, 1.0))
    raise AssertionError("unreachable")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server this test may kill (the session's is shared): AOF everysec, the durability contract."""
    server = RedisServer(tmp_path / "redis", appendfsync="everysec")
    server.start()
    yield server
    server.stop()


@pytest.mark.timeout(1800)  # the whole distributed topology, a JVM, Chromium and a load, on a busy machine
def test_killing_a_replica_of_every_service_then_redis_loses_nothing_and_the_player_keeps_playing(
    tmp_path: Path, own_redis: RedisServer, cassandra: CassandraNode
) -> None:
    missing = missing_requirements()
    if missing:
        pytest.fail(f"the chaos test plays in Chromium: {missing}")
    data, prefix, key_prefix = tmp_path / "data", unique_prefix(), f"c{uuid.uuid4().hex[:12]}:"
    proc, ready = start(
        tmp_path,
        own_redis.url,
        ["--cql", cassandra.contact_point],
        {**ENV, "MARQUEE_STORE__CQL__KEYSPACE_PREFIX": prefix, "MARQUEE_REDIS__KEY_PREFIX": key_prefix},
    )
    browser: Browser | None = None
    load: Load | None = None
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"marquee up --distributed exited: {proc.communicate()}")
            return ready.exists()

        wait_progressing(up, lambda: logs_size(data), "marquee up --distributed starting")
        described = json.loads(ready.read_text())
        replicas = read_replicas(ready)
        gateway = next(e["address"] for e in described["gateway"] if e["kind"] == "http").rstrip("/")
        email, _, password = next(e for e in described["accounts"] if e["kind"] == "info")["address"].partition(" / ")
        md = admin_metadata(load_config(data_dir=data))
        catalogs = [r["address"] for name, r in replicas.items() if name.startswith("catalog-")]
        playing_title = wait_progressing(
            playable_title(catalogs, md, media=MEDIA), lambda: logs_size(data), f"a title on {MEDIA} becoming playable"
        )

        # the load's viewer: the demo account's profile Sam (the browser plays as Alex)
        signed, selected = gateway_sign_in(gateway, email, password, "Sam")
        viewer = Viewer(gateway, selected.tokens.access_token, signed.account.name, selected.profile.name)
        listed = viewer.call(
            "marquee.v1.CatalogService/ListTitles",
            catalog_pb2.ListTitlesRequest(
                filter=catalog_pb2.TitleFilter(playable_only=True, region="US"), page_size=50
            ),
            catalog_pb2.ListTitlesResponse,
        )
        titles = [t.name for t in listed.titles if t.name != playing_title][:RATED_TITLES]
        assert len(titles) == RATED_TITLES, "the demo catalog has enough playable titles"

        # Chromium plays a 60 s title as the first profile
        browser = Browser()
        browser.new_page()
        site = _Site(gateway, email, password)
        sign_in(browser, site, profile="Alex")
        watch(browser, site, playing_title.removeprefix("titles/"))
        browser.wait_for_function("document.querySelector('[data-testid=video]').currentTime > 1", timeout=30_000)
        browser.evaluate(PLAYED)

        # encoding jobs go to the encoder directly, as an operator's tools do
        master = make_master(tmp_path / "chaos-master.mp4", "testsrc", 160, 90, 2)  # quick to encode
        encoder = grpc.insecure_channel(replicas["encoder-1"]["address"])
        jobs = encoding_pb2_grpc.EncodingServiceStub(encoder)
        catalog_admin = catalog_pb2_grpc.CatalogServiceStub(grpc.insecure_channel(catalogs[0]))
        job_titles = [f"chaos-{uuid.uuid4().hex[:8]}" for _ in range(JOBS)]
        for title_id in job_titles:
            catalog_admin.CreateTitle(
                catalog_pb2.CreateTitleRequest(
                    title=catalog_pb2.Title(
                        display_name=title_id,
                        type=catalog_pb2.TITLE_TYPE_MOVIE,
                        maturity_rating=common_pb2.MATURITY_RATING_ALL,
                    ),
                    title_id=title_id,
                ),
                metadata=md,
                timeout=30,
            )

        def submit(title_id: str, request_id: str) -> encoding_pb2.EncodingJob:
            request = encoding_pb2.CreateEncodingJobRequest(
                job=encoding_pb2.EncodingJob(
                    title=f"titles/{title_id}",
                    source_uri=str(master),
                    ladder=[encoding_pb2.Rung(name="144p", height=144, video_bitrate=200_000)],
                ),
                request_id=request_id,
            )
            job: encoding_pb2.EncodingJob = jobs.CreateEncodingJob(request, metadata=md, timeout=30).job
            return job

        load = Load(viewer, titles)
        load.start()
        wait_progressing(lambda: load.ops >= 20, lambda: load.ops, "the load getting going")
        played_before = float(browser.evaluate("window.__chaos.played"))
        chaos_started = time.monotonic()
        job_names = {_retry_unavailable(partial(submit, t, f"req-{t}"), viewer.retried).name for t in job_titles}

        # SIGKILL one replica of every service, mid-load; the supervisor restarts each
        killed = {name: int(replicas[name]["pid"]) for name in KILLED}
        for pid in killed.values():
            os.kill(pid, signal.SIGKILL)
        resubmitted = {_retry_unavailable(partial(submit, t, f"req-{t}"), viewer.retried).name for t in job_titles}
        assert resubmitted == job_names, "a job resubmitted with its request id is the same job"

        def restarted() -> bool:
            now = read_replicas(ready)
            return all(int(now[n]["pid"]) != pid and now[n]["restarts"] == "1" for n, pid in killed.items())

        wait_progressing(restarted, lambda: (logs_size(data), load.ops), "the killed replicas restarting")

        # then the Redis server, mid-load: what it acknowledged is in its AOF
        before_redis = load.ops
        own_redis.kill()
        own_redis.start()
        wait_progressing(
            lambda: load.ops >= before_redis + 30,
            lambda: load.ops,
            "the load going on after Redis restarted",
        )
        load.stop()
        acked = load.acked

        # the player kept playing through all of it, and plays on after it
        played_during = float(browser.evaluate("window.__chaos.played")) - played_before
        chaos_seconds = time.monotonic() - chaos_started
        assert browser.player().get("state") != "error", browser.player()
        browser.wait_for_function(f"window.__chaos.played > {played_before + played_during + 5}", timeout=60_000)
        frozen_ms = float(browser.evaluate("window.__monitor.frozenMs"))

        # every acknowledged write reads back, whichever replica answers
        positions_read = 0
        for title, (event_time, position_ms) in acked.positions.items():
            got = viewer.call(
                "marquee.v1.PlaybackService/GetPosition",
                playback_pb2.GetPositionRequest(profile=viewer.profile, title=title),
                playback_pb2.GetPositionResponse,
            ).position
            assert (got.event_time.ToMicroseconds(), got.position.ToMilliseconds()) == (event_time, position_ms)
            positions_read += 1
        ratings_read = 0
        for title, stars in acked.ratings.items():
            got_rating = viewer.call(
                "marquee.v1.CatalogService/GetRating",
                catalog_pb2.GetRatingRequest(name=f"{title}/ratings/{viewer.profile.rsplit('/', 1)[1]}"),
                catalog_pb2.GetRatingResponse,
            )
            assert got_rating.rating.stars == stars, title
            ratings_read += 1
        reviews_read = 0
        for title, names in acked.reviews.items():
            mine = [
                r.name
                for r in viewer.call(
                    "marquee.v1.CatalogService/ListReviews",
                    catalog_pb2.ListReviewsRequest(parent=title, page_size=100),
                    catalog_pb2.ListReviewsResponse,
                ).reviews
                if r.author == viewer.profile
            ]
            assert sorted(mine) == sorted(names), f"{title}: each acknowledged review once, no other"
            reviews_read += len(mine)

        # events: every job done once, its encoding.done applied by every catalog replica; positions written behind
        def jobs_done() -> list[encoding_pb2.EncodingJob] | None:
            states = [
                jobs.GetEncodingJob(encoding_pb2.GetEncodingJobRequest(name=n), metadata=md, timeout=30).job
                for n in job_names
            ]
            failed = [j for j in states if j.state == encoding_pb2.ENCODING_JOB_STATE_FAILED]
            assert not failed, failed
            return states if all(j.state == encoding_pb2.ENCODING_JOB_STATE_SUCCEEDED for j in states) else None

        done = wait_progressing(jobs_done, lambda: logs_size(data), "the chaos encoding jobs finishing")
        listed_jobs = jobs.ListEncodingJobs(
            encoding_pb2.ListEncodingJobsRequest(page_size=100), metadata=md, timeout=30
        )
        assert Counter(j.title for j in listed_jobs.jobs if j.title.startswith("titles/chaos-")) == Counter(
            f"titles/{t}" for t in job_titles
        ), "one job per request id"

        def playable_everywhere() -> bool:
            for address in read_replicas(ready).values():
                if not address["label"].startswith("catalog-"):
                    continue
                with grpc.insecure_channel(address["address"]) as channel:
                    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
                    for title_id in job_titles:
                        got = stub.GetTitle(
                            catalog_pb2.GetTitleRequest(name=f"titles/{title_id}"), metadata=md, timeout=30
                        )
                        if not got.title.playable:
                            return False
            return True

        wait_progressing(playable_everywhere, lambda: logs_size(data), "the chaos titles becoming playable")
        persisted = asyncio.run(_persisted(cassandra, prefix, viewer, acked, own_redis.url, key_prefix))
    finally:
        if load is not None:
            load._stop.set()
        if browser is not None:
            browser.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    retried = Counter(r.split(":", 1)[0] for r in viewer.retried)
    print(
        f"\nchaos: killed {', '.join(KILLED)} and redis-server mid-load;"
        f" acknowledged: {acked.updates} position updates ({len(acked.positions)} positions),"
        f" {acked.rating_calls} ratings ({len(acked.ratings)} titles), {sum(map(len, acked.reviews.values()))} reviews,"
        f" {len(acked.sessions)} playback starts, {JOBS} encoding jobs;"
        f" read back: {positions_read} positions (and {persisted} persisted by the writer), {ratings_read} ratings,"
        f" {reviews_read} reviews; events: {len(done)} jobs done once, {JOBS} titles playable on every catalog"
        f" replica; calls retried to success: {len(viewer.retried)} ({dict(retried)}),"
        f" stream-limit waits {acked.stream_limit_waits};"
        f" the player played {played_during:.1f} s of the chaos's {chaos_seconds:.0f} s"
        f" (longest freeze {frozen_ms / 1000:.1f} s) and played on after it"
    )
    assert persisted == len(acked.positions)


async def _persisted(
    node: CassandraNode, prefix: str, viewer: Viewer, acked: Acked, redis_url: str, key_prefix: str
) -> int:
    """Positions the positions-writer persisted to the store, once it has caught up (each one's newest report)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    stream = f"{key_prefix}bus:playback.update"
    try:
        while True:  # the writer group's lag: what it has not read or not acknowledged
            groups = {g["name"].decode(): g for g in await client.xinfo_groups(stream)}
            writer = groups["positions-writer"]
            unread = await client.xrange(stream, "(" + writer["last-delivered-id"].decode(), "+")
            if writer["pending"] == 0 and not unread:
                break
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    store = CqlStore(CqlConfig(contact_points=[node.contact_point], keyspace_prefix=prefix))
    await store.migrate(SCHEMA)  # already at its version: this only loads the tables
    account_id = viewer.account.rsplit("/", 1)[1]
    profile_id = viewer.profile.rsplit("/", 1)[1]
    try:
        count = 0
        for title, (event_time, position_ms) in acked.positions.items():
            row = await store.get(
                POSITIONS,
                {"account_id": account_id, "profile_id": profile_id, "title_id": title.removeprefix("titles/")},
            )
            assert row is not None and (row["event_time"], row["position_ms"]) == (event_time, position_ms), title
            count += 1
        return count
    finally:
        await store.close()


@dataclass
class _Site:
    url: str
    email: str
    password: str

    def demo_sign_in(self) -> tuple[str, str]:
        return self.email, self.password
