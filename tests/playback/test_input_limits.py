"""Time values from clients (issue 15, finding 8): invalid Timestamps and Durations are INVALID_ARGUMENT saying
what is wrong (never INTERNAL from a conversion deep in the handler), an event_time of 1970 is not "required",
and a client clock running fast is clamped to ours so it cannot block the real updates that follow."""

from __future__ import annotations

import time

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from marquee.v1 import playback_pb2 as pb
from services.playback.positions import MAX_CLOCK_SKEW_MS
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback
from tests.playback.test_playback import at, fails, start, when

YEAR_10000 = 253_402_300_800  # 10000-01-01T00:00:00Z, one second past the last valid Timestamp


async def test_invalid_event_times_say_what_is_wrong(playback: Playback) -> None:
    md = playback.caller("t1", "p1")
    session = await start(playback, md, profile="accounts/t1/profiles/p1")
    now = int(time.time())
    cases = [
        (timestamp_pb2.Timestamp(seconds=YEAR_10000), "year 1 to 9999"),
        (timestamp_pb2.Timestamp(seconds=2**62), "year 1 to 9999"),
        (timestamp_pb2.Timestamp(seconds=now, nanos=1_500_000_000), "nanos"),
        (timestamp_pb2.Timestamp(seconds=now, nanos=-1), "nanos"),
        (timestamp_pb2.Timestamp(seconds=0), "1970-01-01T00:00:00Z is before"),
        (timestamp_pb2.Timestamp(seconds=-86400), "1969-12-31T00:00:00Z is before"),
    ]
    for event_time, words in cases:
        for call in (
            playback.stub.UpdatePosition(
                pb.UpdatePositionRequest(session=session.name, position=at(1), event_time=event_time), metadata=md
            ),
            playback.stub.StopPlayback(
                pb.StopPlaybackRequest(session=session.name, position=at(1), event_time=event_time), metadata=md
            ),
        ):
            message = await fails(call, grpc.StatusCode.INVALID_ARGUMENT)
            assert words in message and "event_time" in message, (event_time, message)
            assert "required" not in message
    missing = await fails(
        playback.stub.UpdatePosition(pb.UpdatePositionRequest(session=session.name, position=at(1)), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert missing == "event_time is required"


async def test_invalid_durations_are_refused(playback: Playback) -> None:
    md = playback.caller("t2", "p1")
    session = await start(playback, md, profile="accounts/t2/profiles/p1")
    bad = [
        duration_pb2.Duration(seconds=1, nanos=2_000_000_000),
        duration_pb2.Duration(seconds=0, nanos=1_000_000_000),
        duration_pb2.Duration(seconds=1, nanos=-5),  # signs disagree
        duration_pb2.Duration(seconds=315_576_000_001),
    ]
    for d in bad:
        message = await fails(
            playback.stub.UpdatePosition(
                pb.UpdatePositionRequest(session=session.name, position=d, event_time=when()), metadata=md
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "position" in message, message
        report = pb.QoeReport(stalls=[pb.Stall(position=at(1), duration=d)])
        message = await fails(
            playback.stub.ReportQoe(pb.ReportQoeRequest(session=session.name, report=report), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "report.stalls[0].duration" in message, message
    # the largest valid nanos still works
    ok = await playback.stub.UpdatePosition(
        pb.UpdatePositionRequest(
            session=session.name, position=duration_pb2.Duration(seconds=1, nanos=999_999_999), event_time=when()
        ),
        metadata=md,
    )
    assert ok.applied and ok.position.ToMilliseconds() == 1999


async def test_a_fast_client_clock_is_clamped_and_blocks_nothing(playback: Playback) -> None:
    fast, right = playback.caller("t3", "p1"), playback.caller("t3", "p1")
    profile = "accounts/t3/profiles/p1"
    first = await start(playback, fast, profile=profile)
    before = time.time()
    ahead = await playback.stub.UpdatePosition(
        pb.UpdatePositionRequest(session=first.name, position=at(4), event_time=when(300)), metadata=fast
    )
    after = time.time()
    assert ahead.applied
    got = await playback.stub.GetPosition(
        pb.GetPositionRequest(profile=profile, title=f"titles/{TITLE}"), metadata=fast
    )
    stored = got.position.event_time.ToMicroseconds() / 1e6
    assert before <= stored <= after + MAX_CLOCK_SKEW_MS / 1000, "stored at our clock plus the skew, not 5 min ahead"
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=first.name), metadata=fast)
    # a device with a right clock, a moment later (past the skew): its update applies, it is not blocked for 5 min
    second = await start(playback, right, profile=profile)
    later = await playback.stub.UpdatePosition(
        pb.UpdatePositionRequest(session=second.name, position=at(8), event_time=when(MAX_CLOCK_SKEW_MS / 1000 + 0.5)),
        metadata=right,
    )
    assert later.applied and later.position.ToMilliseconds() == 8000
