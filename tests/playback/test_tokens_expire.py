"""The session's signed URLs live as long as its lease: each heartbeat renews them, and once heartbeats stop the
manifest endpoint and the edge both answer 410 from the moment the lease lapses."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import m3u8
import pytest

from marquee.v1 import playback_pb2 as pb
from services.common.config import ServerConfig
from services.playback.config import ManifestHttpConfig, PlaybackConfig
from tests.playback.conftest import Playback
from tests.playback.test_playback import PROFILE_1, at, start, when


@pytest.fixture
def playback_config() -> PlaybackConfig:
    return PlaybackConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1),
        http=ManifestHttpConfig(port=0),
        session_timeout=3,
    )


async def test_signed_urls_expire_with_the_session_lease(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md, profile=PROFILE_1)
    assert session.url_token and f"token={session.url_token}" in session.manifest_urls.hls_uri
    assert abs(session.expire_time.seconds - time.time() - 3) < 2, "the token expires with the lease"
    async with aiohttp.ClientSession() as http:
        async with http.get(session.manifest_urls.hls_uri) as r:
            assert r.status == 200
            variant = m3u8.loads(await r.text()).playlists[0].uri
        async with http.get(variant) as r:
            assert r.status == 200
        # a heartbeat past half the lease renews it, and the token with it
        await asyncio.sleep(max(0.0, session.expire_time.ToNanoseconds() / 1e9 - 1.2 - time.time()))
        beat = await playback.stub.UpdatePosition(
            pb.UpdatePositionRequest(session=session.name, position=at(1), event_time=when()), metadata=md
        )
        assert beat.url_token and beat.url_token != session.url_token
        assert beat.expire_time.seconds > session.expire_time.seconds
        renewed = variant.replace(session.url_token, beat.url_token)
        # no more heartbeats: once the lease lapses, every URL of the session is refused
        await asyncio.sleep(max(0.0, beat.expire_time.seconds + 1.1 - time.time()))
        for url in (session.manifest_urls.hls_uri, variant, renewed):
            async with http.get(url) as r:
                assert r.status == 410, url
