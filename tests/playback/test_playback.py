"""PlaybackService over real gRPC and HTTP: sessions, entitlements, resume, history, limits, tokens at the edge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import m3u8
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from marquee.v1 import catalog_pb2, common_pb2
from marquee.v1 import playback_pb2 as pb
from services.common.config import ServerConfig
from services.common.errors import error_info
from services.playback.config import ManifestHttpConfig, PlaybackConfig
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback, add_title

PROFILE_1 = "accounts/a1/profiles/p1"


def at(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(int(seconds * 1000))
    return d


def when(offset: float = 0.0) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.GetCurrentTime()
    t.FromNanoseconds(t.ToNanoseconds() + int(offset * 1e9))
    return t


async def fails(call: Any, code: grpc.StatusCode, reason: str | None = None) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    if reason is not None:
        info = error_info(err.value)
        assert info is not None and info.reason == reason, info
    return err.value.details() or ""


async def start(p: Playback, md: Any, profile: str = PROFILE_1, **client: Any) -> pb.PlaybackSession:
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile=profile, client=pb.ClientInfo(**client))
    reply = await p.stub.StartPlayback(request, metadata=md)
    session: pb.PlaybackSession = reply.session
    return session


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def test_manifests_carry_tokens_the_edge_accepts(playback: Playback, origin: Path) -> None:
    md = playback.caller("a1", "p1", plan="basic")
    session = await start(playback, md, region="US")
    assert session.max_resolution_height == 360
    assert [a.codecs for a in session.audio_tracks] == ["mp4a.40.2"]
    status, text = await fetch(session.manifest_urls.hls_uri)
    assert status == 200
    master = m3u8.loads(text)
    assert "EXT-X-CONTENT-STEERING" in text and session.steering_uri in text
    heights = {v.stream_info.resolution[1] for v in master.playlists}
    assert heights == {360}, "the plan's resolution cap"
    variant = master.playlists[0].uri
    assert variant.startswith(playback.edge.base_url) and "token=" in variant
    status, media = await fetch(variant)
    assert status == 200
    first = m3u8.loads(media).segments[0].uri
    segment_url = variant.rsplit("/", 1)[0] + "/" + first
    async with aiohttp.ClientSession() as s, s.get(segment_url) as r:
        assert r.status == 200
        assert await r.read() == (origin / TITLE / "360p" / "seg-1.m4s").read_bytes()
    status, mpd = await fetch(session.manifest_urls.dash_uri)
    assert status == 200 and "<ContentSteering" in mpd and 'height="480"' not in mpd
    # a clear title's session names no HLS AES-128 variant, and asking for it anyway is 404
    assert session.manifest_urls.hls_aes128_uri == ""
    status, body = await fetch(session.manifest_urls.hls_uri.replace("/master.m3u8", "/master-aes128.m3u8"))
    assert status == 404 and "no HLS AES-128 variant" in body
    tampered = session.manifest_urls.hls_uri[:-4] + "AAAA"
    assert (await fetch(tampered))[0] == 403
    other = session.manifest_urls.hls_uri.replace(session.name.split("/")[1], "0" * 24)
    assert (await fetch(other))[0] == 403, "a token is bound to its session"


@pytest.fixture
def playback_config() -> PlaybackConfig:
    return PlaybackConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1),
        http=ManifestHttpConfig(port=0),
        session_timeout=1.5,
    )


async def test_resume_across_devices_and_profiles_apart(playback: Playback) -> None:
    phone, tv = playback.caller("a1", "p1"), playback.caller("a1", "p1")
    first = await start(playback, phone)
    assert first.resume_position.ToMilliseconds() == 0
    reply = await playback.stub.UpdatePosition(
        pb.UpdatePositionRequest(session=first.name, position=at(6.5), event_time=when()), metadata=phone
    )
    assert reply.applied and reply.position.ToMilliseconds() == 6500
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=first.name), metadata=phone)
    second = await start(playback, tv)
    assert second.resume_position.ToMilliseconds() == 6500, "the other device resumes where the first stopped"
    # another profile of the same account sees nothing of it
    kid = playback.caller("a1", "p2")
    await fails(
        playback.stub.GetPosition(pb.GetPositionRequest(profile=PROFILE_1, title=f"titles/{TITLE}"), metadata=kid),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await fails(
        playback.stub.GetPosition(
            pb.GetPositionRequest(profile="accounts/a1/profiles/p2", title=f"titles/{TITLE}"), metadata=kid
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await fails(
        playback.stub.UpdatePosition(
            pb.UpdatePositionRequest(session=second.name, position=at(1), event_time=when()), metadata=kid
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await fails(
        playback.stub.ListWatchHistory(pb.ListWatchHistoryRequest(parent=PROFILE_1), metadata=kid),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_last_write_wins_by_event_time(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    newer = await playback.stub.UpdatePosition(
        pb.UpdatePositionRequest(session=session.name, position=at(8), event_time=when(-1)), metadata=md
    )
    late = await playback.stub.UpdatePosition(
        pb.UpdatePositionRequest(session=session.name, position=at(2), event_time=when(-5)), metadata=md
    )
    assert newer.applied and not late.applied and late.position.ToMilliseconds() == 8000
    got = await playback.stub.GetPosition(
        pb.GetPositionRequest(profile=PROFILE_1, title=f"titles/{TITLE}"), metadata=md
    )
    assert got.position.position.ToMilliseconds() == 8000


async def test_stream_limit_freed_by_stop_and_by_expiry(playback: Playback) -> None:
    md = playback.caller("a2", "p1", plan="basic")
    profile = "accounts/a2/profiles/p1"
    first = await start(playback, md, profile=profile)
    await fails(start(playback, md, profile=profile), grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_LIMIT_REACHED")
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=first.name), metadata=md)
    second = await start(playback, md, profile=profile)
    await asyncio.sleep(1.7)  # heartbeats stopped: the session expires and frees its slot
    third = await start(playback, md, profile=profile)
    assert third.name != second.name
    await fails(
        playback.stub.UpdatePosition(
            pb.UpdatePositionRequest(session=second.name, position=at(1), event_time=when()), metadata=md
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_geo_block_maturity_and_playability_refusals(playback: Playback) -> None:
    async def license_in(*regions: str) -> None:
        title = catalog_pb2.Title(name=f"titles/{TITLE}", licensed_regions=list(regions))
        mask = field_mask_pb2.FieldMask(paths=["licensed_regions"])
        await playback.catalog.UpdateTitle(
            catalog_pb2.UpdateTitleRequest(title=title, update_mask=mask), metadata=playback.admin
        )

    md = playback.caller("a3", "p1")
    profile = "accounts/a3/profiles/p1"
    # the caller is on loopback, which the default geo config places in US: the region it claims is a UI hint
    await license_in("FR", "CA")
    await fails(start(playback, md, profile=profile, region="FR"), grpc.StatusCode.FAILED_PRECONDITION, "GEO_BLOCKED")
    await fails(start(playback, md, profile=profile), grpc.StatusCode.FAILED_PRECONDITION, "GEO_BLOCKED")
    await license_in("US", "CA")
    allowed = await start(playback, md, profile=profile, region="FR")
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=allowed.name), metadata=md)
    kids = playback.caller("a3", "kid", maturity=common_pb2.MATURITY_RATING_KIDS_7)
    await fails(
        start(playback, kids, profile="accounts/a3/profiles/kid", region="US"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "MATURITY_RESTRICTED",
    )
    await add_title(playback, "not-encoded")
    request = pb.StartPlaybackRequest(title="titles/not-encoded", profile=profile)
    await fails(
        playback.stub.StartPlayback(request, metadata=md), grpc.StatusCode.FAILED_PRECONDITION, "TITLE_NOT_PLAYABLE"
    )
    request = pb.StartPlaybackRequest(title="titles/no-such", profile=profile)
    await fails(playback.stub.StartPlayback(request, metadata=md), grpc.StatusCode.NOT_FOUND)
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile="accounts/other/profiles/p1")
    await fails(playback.stub.StartPlayback(request, metadata=md), grpc.StatusCode.PERMISSION_DENIED)


async def test_bad_positions_and_sessions(playback: Playback) -> None:
    md = playback.caller("a4", "p1")
    session = await start(playback, md, profile="accounts/a4/profiles/p1")
    bad = [
        pb.UpdatePositionRequest(session=session.name, position=at(10_000), event_time=when()),
        pb.UpdatePositionRequest(session=session.name, position=duration_pb2.Duration(seconds=-3), event_time=when()),
        pb.UpdatePositionRequest(
            session=session.name, position=duration_pb2.Duration(seconds=2**62), event_time=when()
        ),
        pb.UpdatePositionRequest(session=session.name, position=at(1)),
        pb.UpdatePositionRequest(session="playbackSessions/nope!", position=at(1), event_time=when()),
    ]
    for request in bad:
        await fails(playback.stub.UpdatePosition(request, metadata=md), grpc.StatusCode.INVALID_ARGUMENT)
    unknown = pb.UpdatePositionRequest(session="playbackSessions/" + "0" * 24, position=at(1), event_time=when())
    await fails(playback.stub.UpdatePosition(unknown, metadata=md), grpc.StatusCode.NOT_FOUND)


async def test_history_continue_watching_events_and_qoe(playback: Playback) -> None:
    from services.common.topics import PLAYBACK_UPDATE, PLAYBACK_VIEWED

    updates = await playback.bus.subscribe(PLAYBACK_UPDATE, "t", "t")
    viewed = await playback.bus.subscribe(PLAYBACK_VIEWED, "t", "t")
    md = playback.caller("a5", "p1")
    profile = "accounts/a5/profiles/p1"
    session = await start(playback, md, profile=profile)
    await playback.stub.UpdatePosition(
        pb.UpdatePositionRequest(session=session.name, position=at(3), event_time=when(-2)), metadata=md
    )
    cw = await playback.stub.ListContinueWatching(pb.ListContinueWatchingRequest(parent=profile), metadata=md)
    assert [e.title for e in cw.entries] == [f"titles/{TITLE}"]
    runtime = cw.entries[0].runtime.ToMilliseconds() / 1000
    stopped = await playback.stub.StopPlayback(
        pb.StopPlaybackRequest(session=session.name, position=at(runtime * 0.96), event_time=when()), metadata=md
    )
    assert stopped.position.finished, "95% counts as finished"
    cw = await playback.stub.ListContinueWatching(pb.ListContinueWatchingRequest(parent=profile), metadata=md)
    assert not cw.entries
    history = await playback.stub.ListWatchHistory(pb.ListWatchHistoryRequest(parent=profile), metadata=md)
    assert [e.finished for e in history.entries] == [True]
    assert (await updates.next(timeout=2)) is not None and (await viewed.next(timeout=2)) is not None
    await playback.stub.DeleteWatchHistoryEntry(
        pb.DeleteWatchHistoryEntryRequest(name=history.entries[0].name), metadata=md
    )
    assert not (await playback.stub.ListWatchHistory(pb.ListWatchHistoryRequest(parent=profile), metadata=md)).entries
    # QoE: metrics, and stalls on a pathway demote it for the session at steering
    live = await start(playback, md, profile=profile)
    report = pb.QoeReport(
        startup_time=at(0.4),
        stalls=[pb.Stall(position=at(2), duration=at(0.5))],
        pathway_id="edge-a",
        playing_time=at(1),  # what fits in the session's first seconds (and the report's slack)
        current_bandwidth=800_000,
    )
    await playback.stub.ReportQoe(pb.ReportQoeRequest(session=live.name, report=report), metadata=md)
    from prometheus_client import REGISTRY

    assert (REGISTRY.get_sample_value("marquee_playback_stalls_total", {"pathway": "edge-a"}) or 0) >= 1
    assert (REGISTRY.get_sample_value("marquee_playback_video_start_seconds_count") or 0) >= 1
    steered = playback.steering_state.sessions[live.name.removeprefix("playbackSessions/")]
    assert "edge-a" in steered.demoted_until, "steering heard about the stalls on edge-a"
    negative = pb.QoeReport(stalls=[pb.Stall(duration=duration_pb2.Duration(seconds=-1))])
    await fails(
        playback.stub.ReportQoe(pb.ReportQoeRequest(session=live.name, report=negative), metadata=md),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
