"""Issue 15, finding 2 (playback's half): a QoE report is bounded by what its session can have observed, and made-up
pathways neither reach the metrics nor steering. The hostile reports of the issue are refused with
INVALID_ARGUMENT and a reason; one account's stalls do not demote the edge for anyone else."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import duration_pb2
from prometheus_client import REGISTRY

from marquee.v1 import playback_pb2 as pb
from tests.playback.conftest import Playback
from tests.playback.test_playback import at, fails, start

PROFILE = "accounts/q1/profiles/p1"


async def test_reports_beyond_what_a_session_observed_are_refused(playback: Playback) -> None:
    md = playback.caller("q1", "p1")
    session = await start(playback, md, profile=PROFILE)

    async def report(**fields: Any) -> None:
        await playback.stub.ReportQoe(
            pb.ReportQoeRequest(session=session.name, report=pb.QoeReport(**fields)), metadata=md
        )

    bad = grpc.StatusCode.INVALID_ARGUMENT
    huge = duration_pb2.Duration(seconds=10**11)
    stalls_before = REGISTRY.get_sample_value("marquee_playback_stall_seconds_total", {"pathway": "edge-a"}) or 0
    for fields in (
        {"stalls": [pb.Stall(position=at(1), duration=huge)], "pathway_id": "edge-a"},
        {"playing_time": duration_pb2.Duration(seconds=10**11)},
        {"playing_time": at(60)},  # a minute of playing, seconds after the start
        {"startup_time": at(3600)},
        {"stalls": [pb.Stall(position=duration_pb2.Duration(seconds=10**9), duration=at(0.1))]},
        {"stalls": [pb.Stall(position=at(1), duration=at(0.01))] * 200},  # 200 stalls in two seconds
        {"current_bandwidth": 10**15},
        {"bytes_downloaded": 10**15},
    ):
        await fails(report(**fields), bad, "QOE_OUT_OF_BOUNDS")
    for beyond_any_duration in (
        {"stalls": [pb.Stall(position=at(1), duration=duration_pb2.Duration(seconds=10**12))]},
        {"playing_time": duration_pb2.Duration(seconds=10**15)},
    ):
        await fails(report(**beyond_any_duration), bad)  # not a valid Duration at all (over 10,000 years)
    await fails(report(pathway_id="made-up-1", stalls=[pb.Stall(duration=at(0.1))]), bad, "UNKNOWN_PATHWAY")
    assert REGISTRY.get_sample_value("marquee_playback_stalls_total", {"pathway": "made-up-1"}) is None
    stalls_after = REGISTRY.get_sample_value("marquee_playback_stall_seconds_total", {"pathway": "edge-a"}) or 0
    assert stalls_after == stalls_before, "nothing of a refused report reached the metrics"
    # what the session did observe is taken, once: the next report's window starts where this one ended
    await report(pathway_id="edge-a", playing_time=at(1), stalls=[pb.Stall(position=at(1), duration=at(0.5))])
    await fails(report(playing_time=at(2.5)), bad, "QOE_OUT_OF_BOUNDS")


async def test_one_accounts_stalls_do_not_demote_the_edge_for_others(playback: Playback) -> None:
    md = playback.caller("q2", "p1")
    session = await start(playback, md, profile="accounts/q2/profiles/p1")
    stalls = [pb.Stall(position=at(1), duration=at(0.1))] * 5
    request = pb.ReportQoeRequest(session=session.name, report=pb.QoeReport(pathway_id="edge-a", stalls=stalls))
    await playback.stub.ReportQoe(request, metadata=md)
    steering = playback.steering_state
    assert "edge-a" in steering.sessions[session.name.removeprefix("playbackSessions/")].demoted_until
    assert steering.demoted_pathways(steering.clock()) == frozenset(), "no demotion for anyone else"
