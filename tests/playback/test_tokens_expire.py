"""The session's signed URLs expire: the manifest endpoint and the edge both answer 410 afterwards."""

from __future__ import annotations

import asyncio

import aiohttp
import m3u8
import pytest

from services.common.config import ServerConfig
from services.playback.config import ManifestHttpConfig, PlaybackConfig
from tests.playback.conftest import Playback
from tests.playback.test_playback import PROFILE_1, start


@pytest.fixture
def playback_config() -> PlaybackConfig:
    return PlaybackConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1), http=ManifestHttpConfig(port=0), token_ttl=2
    )


async def test_signed_urls_expire_at_the_edge_and_the_manifest_endpoint(playback: Playback) -> None:
    session = await start(playback, playback.caller("a1", "p1"), profile=PROFILE_1)
    async with aiohttp.ClientSession() as http:
        async with http.get(session.manifest_urls.hls_uri) as r:
            assert r.status == 200
            variant = m3u8.loads(await r.text()).playlists[0].uri
        async with http.get(variant) as r:
            assert r.status == 200
        await asyncio.sleep(3.1)
        async with http.get(session.manifest_urls.hls_uri) as r:
            assert r.status == 410
        async with http.get(variant) as r:
            assert r.status == 410
