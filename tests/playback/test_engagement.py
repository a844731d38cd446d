"""Issue 18, item 3 (playback's half): the per-session metrics the dashboards need. Starts and completions (once
per session, whichever replica hears the finishing report), and one observation per ended session of its rebuffer
ratio, bitrate switches and watch time (by the kind of profile, from the access token), from the QoE reports it
sent to any replica, whether it was stopped or expired. Each metric is read from the prometheus_client registry
before and after, and must move exactly when it should."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from prometheus_client import REGISTRY

from marquee.v1 import common_pb2
from marquee.v1 import playback_pb2 as pb
from services.common.bus.memory import InMemoryBus
from services.common.topics import PLAYBACK_VIEWED
from services.playback.config import PlaybackConfig
from services.playback.schema import LIVE_SESSIONS, SESSIONS, live_shard
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback
from tests.playback.test_playback import at, fails, start, when
from tests.playback.test_replicas import another_replica

Stub = Any  # a PlaybackServiceStub on a grpc.aio channel
ADULT = common_pb2.MATURITY_RATING_ADULT
SESSION_METRICS: tuple[tuple[str, dict[str, str]], ...] = (
    ("marquee_playback_session_rebuffer_ratio_count", {}),
    ("marquee_playback_session_rebuffer_ratio_sum", {}),
    ("marquee_playback_session_switches_count", {}),
    ("marquee_playback_session_switches_sum", {}),
    ("marquee_playback_profile_watch_seconds_count", {"profile_kind": "standard"}),
    ("marquee_playback_profile_watch_seconds_sum", {"profile_kind": "standard"}),
    ("marquee_playback_profile_watch_seconds_count", {"profile_kind": "kids"}),
    ("marquee_playback_profile_watch_seconds_sum", {"profile_kind": "kids"}),
)


def value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def snapshot() -> dict[tuple[str, str], float]:
    """The per-session metrics now, by (name, profile_kind)."""
    return {(n, labels.get("profile_kind", "")): value(n, labels) for n, labels in SESSION_METRICS}


def moved(before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """What moved since ``before`` (rounded: sums of floats)."""
    now = snapshot()
    return {k: round(now[k] - before[k], 6) for k in now if round(now[k] - before[k], 6) != 0}


def caller(p: Playback, account: str, profile: str, *, kids: bool = False) -> tuple[tuple[str, str], ...]:
    token = p.tokens.issue(account, profile_id=profile, plan="premium", kids=kids, max_maturity=ADULT).token
    return (("authorization", f"Bearer {token}"),)


def report(playing: float, stalls: tuple[float, ...] = (), switches: int = 0, **fields: Any) -> pb.QoeReport:
    return pb.QoeReport(
        playing_time=at(playing),
        stalls=[pb.Stall(position=at(1), duration=at(s)) for s in stalls],
        bitrate_switches=[pb.BitrateSwitch(from_bandwidth=1_000_000, to_bandwidth=2_000_000)] * switches,
        **fields,
    )


async def runtime_of(stub: Any, session: pb.PlaybackSession, md: Any) -> float:
    reply = await stub.UpdatePosition(
        pb.UpdatePositionRequest(session=session.name, position=at(0), event_time=when(-5)), metadata=md
    )
    assert not reply.finished
    got = await stub.GetPosition(pb.GetPositionRequest(profile=session.profile, title=session.title), metadata=md)
    runtime: float = got.position.runtime.ToMilliseconds() / 1000
    assert runtime > 1
    return runtime


@pytest.fixture
async def second(playback: Playback, playback_config: PlaybackConfig, origin: Path) -> AsyncIterator[Stub]:
    async with another_replica(playback, playback_config, origin) as stub:
        yield stub


async def test_starts_count_started_sessions_only(playback: Playback) -> None:
    md = caller(playback, "e1", "p1")
    before = value("marquee_playback_starts_total")
    await start(playback, md, profile="accounts/e1/profiles/p1")
    assert value("marquee_playback_starts_total") == before + 1
    # refused starts do not count: another profile, an unknown title, a plan whose streams are all taken
    await fails(start(playback, md, profile="accounts/e1/profiles/p2"), grpc.StatusCode.PERMISSION_DENIED)
    unknown = pb.StartPlaybackRequest(title="titles/nope", profile="accounts/e1/profiles/p1")
    await fails(playback.stub.StartPlayback(unknown, metadata=md), grpc.StatusCode.NOT_FOUND)
    await start(playback, md, profile="accounts/e1/profiles/p1")  # premium: the second stream
    await fails(start(playback, md, profile="accounts/e1/profiles/p1"), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert value("marquee_playback_starts_total") == before + 2


async def test_a_completion_counts_once_per_session_across_replicas(playback: Playback, second: Stub) -> None:
    md = caller(playback, "e2", "p1")
    session = await start(playback, md, profile="accounts/e2/profiles/p1")
    runtime = await runtime_of(playback.stub, session, md)
    before = value("marquee_playback_completions_total")

    async def update(stub: Any, position: float, offset: float) -> pb.UpdatePositionResponse:
        request = pb.UpdatePositionRequest(session=session.name, position=at(position), event_time=when(offset))
        reply: pb.UpdatePositionResponse = await stub.UpdatePosition(request, metadata=md)
        return reply

    assert not (await update(playback.stub, runtime * 0.9, -4)).finished
    assert value("marquee_playback_completions_total") == before, "below the finished threshold"
    assert (await update(second, runtime * 0.96, -3)).finished
    assert value("marquee_playback_completions_total") == before + 1
    # every later report past the threshold, on either replica, and the stop at the end: the same session
    await update(playback.stub, runtime * 0.98, -2)
    await update(second, runtime, -1)
    stop = pb.StopPlaybackRequest(session=session.name, position=at(runtime), event_time=when())
    await playback.stub.StopPlayback(stop, metadata=md)
    assert value("marquee_playback_completions_total") == before + 1
    # a new session of the same title is a new completion (a rewatch), counted by StopPlayback's position too
    again = await start(playback, md, profile="accounts/e2/profiles/p1")
    await playback.stub.StopPlayback(
        pb.StopPlaybackRequest(session=again.name, position=at(runtime), event_time=when(1)), metadata=md
    )
    assert value("marquee_playback_completions_total") == before + 2


async def test_an_ended_session_is_observed_once_from_the_reports_every_replica_took(
    playback: Playback, second: Stub
) -> None:
    md = caller(playback, "e3", "p1")
    session = await start(playback, md, profile="accounts/e3/profiles/p1")
    before = snapshot()

    async def send(stub: Any, r: pb.QoeReport) -> None:
        await stub.ReportQoe(pb.ReportQoeRequest(session=session.name, report=r), metadata=md)

    # each report fits in its window (the time since the previous one plus 2 s of slack); alternate replicas
    await send(playback.stub, report(1.5, stalls=(0.25,), switches=2))
    await send(second, report(1.0, switches=1))
    await send(playback.stub, report(1.25, stalls=(0.125, 0.125)))
    refused = report(30.0, stalls=(5.0,), switches=3)  # more than the session can have observed
    await fails(send(second, refused), grpc.StatusCode.INVALID_ARGUMENT, "QOE_OUT_OF_BOUNDS")
    assert moved(before) == {}, "nothing is observed before the session ends"
    stop = pb.StopPlaybackRequest(
        session=session.name, position=at(2), event_time=when(), final_report=report(0.75, switches=1)
    )
    await second.StopPlayback(stop, metadata=md)
    stalled, playing = 0.5, 4.5
    assert moved(before) == {
        ("marquee_playback_session_rebuffer_ratio_count", ""): 1,
        ("marquee_playback_session_rebuffer_ratio_sum", ""): round(stalled / (stalled + playing), 6),
        ("marquee_playback_session_switches_count", ""): 1,
        ("marquee_playback_session_switches_sum", ""): 4,
        ("marquee_playback_profile_watch_seconds_count", "standard"): 1,
        ("marquee_playback_profile_watch_seconds_sum", "standard"): playing,
    }
    after = snapshot()
    # stopped again (either replica), or reported to after its end: no second observation
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=md)
    await second.StopPlayback(pb.StopPlaybackRequest(session=session.name, final_report=report(1.0)), metadata=md)
    per_report = value("marquee_playback_playing_seconds_total")
    await send(playback.stub, report(1.0, switches=1))
    assert value("marquee_playback_playing_seconds_total") == per_report + 1, "the per-report metrics still take it"
    assert moved(after) == {}


async def test_a_kids_profile_is_labelled_from_its_token(playback: Playback) -> None:
    md = caller(playback, "e4", "kid", kids=True)
    session = await start(playback, md, profile="accounts/e4/profiles/kid")
    before = snapshot()
    stop = pb.StopPlaybackRequest(session=session.name, final_report=report(1.5))
    await playback.stub.StopPlayback(stop, metadata=md)
    assert moved(before) == {
        ("marquee_playback_session_rebuffer_ratio_count", ""): 1,  # a ratio of 0
        ("marquee_playback_session_switches_count", ""): 1,
        ("marquee_playback_profile_watch_seconds_count", "kids"): 1,
        ("marquee_playback_profile_watch_seconds_sum", "kids"): 1.5,
    }
    # a session with no QoE report has no rebuffer ratio (0/0), but did end: its switches and watch time (0) count
    quiet = await start(playback, md, profile="accounts/e4/profiles/kid")
    before = snapshot()
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=quiet.name), metadata=md)
    assert moved(before) == {
        ("marquee_playback_session_switches_count", ""): 1,
        ("marquee_playback_profile_watch_seconds_count", "kids"): 1,
    }


async def test_a_final_report_out_of_bounds_fails_the_stop_and_observes_nothing(playback: Playback) -> None:
    md = caller(playback, "e5", "p1")
    session = await start(playback, md, profile="accounts/e5/profiles/p1")
    other = caller(playback, "e6", "p1")
    before, starts = snapshot(), value("marquee_playback_starts_total")
    huge = pb.QoeReport(playing_time=duration_pb2.Duration(seconds=3600))
    stop = pb.StopPlaybackRequest(session=session.name, final_report=huge)
    await fails(playback.stub.StopPlayback(stop, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, "QOE_OUT_OF_BOUNDS")
    stop = pb.StopPlaybackRequest(session=session.name, final_report=report(1.0, pathway_id="made-up"))
    await fails(playback.stub.StopPlayback(stop, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_PATHWAY")
    # another account cannot stop it, nor report to it
    stop = pb.StopPlaybackRequest(session=session.name, final_report=report(1.0))
    await fails(playback.stub.StopPlayback(stop, metadata=other), grpc.StatusCode.PERMISSION_DENIED)
    await fails(
        playback.stub.ReportQoe(pb.ReportQoeRequest(session=session.name, report=report(1.0)), metadata=other),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert moved(before) == {} and value("marquee_playback_starts_total") == starts
    row = await playback.store.get(SESSIONS, {"session_id": session.name.removeprefix("playbackSessions/")})
    assert row is not None and not row["ended"] and row["qoe_playing_ms"] == 0


async def test_an_expired_session_is_ended_and_observed_once_by_the_sweep(
    playback: Playback, playback_config: PlaybackConfig, origin: Path
) -> None:
    """A session whose heartbeats stop is ended by the expiry sweep of whichever replica gets there first (here
    two replicas sweep every 0.1 s), observed once and published once as playback.viewed, its stream slot freed;
    its later calls get SESSION_ENDED."""
    quick = playback_config.model_copy(update={"session_timeout": 1.0, "expiry_sweep_interval": 0.1})
    md = caller(playback, "e7", "p1")
    profile = "accounts/e7/profiles/p1"
    bus = InMemoryBus()  # the replicas' shared bus
    viewed = await bus.subscribe(PLAYBACK_VIEWED, "t", "t")
    async with another_replica(playback, quick, origin, bus) as a, another_replica(playback, quick, origin, bus) as b:
        request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile=profile)
        session = (await a.StartPlayback(request, metadata=md)).session
        session_id = session.name.removeprefix("playbackSessions/")
        await b.ReportQoe(
            pb.ReportQoeRequest(session=session.name, report=report(0.75, stalls=(0.25,), switches=3)), metadata=md
        )
        before = snapshot()
        for _ in range(100):  # the lease is 1 s; a sweep runs every 0.1 s on each replica
            await asyncio.sleep(0.1)
            row = await playback.store.get(SESSIONS, {"session_id": session_id})
            if row is not None and row["ended"]:
                break
        else:
            raise AssertionError("the expired session was not ended by the sweep")
        await asyncio.sleep(0.3)  # both replicas have swept past it since
        assert moved(before) == {
            ("marquee_playback_session_rebuffer_ratio_count", ""): 1,
            ("marquee_playback_session_rebuffer_ratio_sum", ""): 0.25,
            ("marquee_playback_session_switches_count", ""): 1,
            ("marquee_playback_session_switches_sum", ""): 3,
            ("marquee_playback_profile_watch_seconds_count", "standard"): 1,
            ("marquee_playback_profile_watch_seconds_sum", "standard"): 0.75,
        }
        assert (
            await playback.store.get(LIVE_SESSIONS, {"shard": live_shard(session_id), "session_id": session_id}) is None
        )
        update = pb.UpdatePositionRequest(session=session.name, position=at(1), event_time=when())
        await fails(b.UpdatePosition(update, metadata=md), grpc.StatusCode.FAILED_PRECONDITION, "SESSION_ENDED")
        after = snapshot()
        await a.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=md)
        assert moved(after) == {}, "stopping an expired session does not observe it again"
    event = await viewed.next(timeout=5)
    assert event is not None, "the swept session's view reaches recommendations"
    seen = pb.VideoViewedEvent.FromString(event.payload)
    assert (seen.session, seen.profile, seen.title) == (session.name, profile, f"titles/{TITLE}")
    assert await viewed.next(timeout=0.5) is None, "published once, by the sweep that ended it"
    await bus.close()


async def test_a_live_session_outlives_the_sweep(
    playback: Playback, playback_config: PlaybackConfig, origin: Path
) -> None:
    """Heartbeats extend the session row only; the sweep finds the sweep list's expiry stale, checks the row and
    moves the entry forward instead of ending the session."""
    quick = playback_config.model_copy(update={"session_timeout": 1.0, "expiry_sweep_interval": 0.1})
    md = caller(playback, "e8", "p1")
    async with another_replica(playback, quick, origin) as a:
        request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile="accounts/e8/profiles/p1")
        session = (await a.StartPlayback(request, metadata=md)).session
        before = snapshot()
        for i in range(12):  # 2.4 s: over twice the lease, heartbeats every 0.2 s
            update = pb.UpdatePositionRequest(session=session.name, position=at(i * 0.2), event_time=when())
            await a.UpdatePosition(update, metadata=md)
            await asyncio.sleep(0.2)
        assert moved(before) == {}
        await a.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=md)
        assert moved(before)[("marquee_playback_session_switches_count", "")] == 1
