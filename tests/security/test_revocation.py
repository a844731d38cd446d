"""Issue 15, finding 3 (segment tokens): StopPlayback revokes the session's signed URLs at both edges and the
shield promptly, so stopping and starting again cannot stream two sessions on a one-stream plan. The edges learn
of the ended session through steering's revocation feed; the manifest endpoint and steering refuse it too."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import m3u8
import pytest

from tests.security.conftest import Stack, token_of

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as reply:
        await reply.read()
        return reply.status


async def segment_urls(http: aiohttp.ClientSession, stack: Stack, hls_uri: str) -> dict[str, str]:
    """A segment of the session, at each edge and at the shield, with the session's token."""
    async with http.get(hls_uri) as reply:
        assert reply.status == 200
        master = m3u8.loads(await reply.text(), uri=hls_uri)
    variant = master.playlists[0].absolute_uri
    async with http.get(variant) as reply:
        assert reply.status == 200
        media = m3u8.loads(await reply.text(), uri=variant)
    segment = media.segments[0].absolute_uri
    path = segment.split("/v/", 1)[1]
    return {node: f"{base}{path}" for node, base in stack.endpoints["edge"].items()}


async def until_refused(http: aiohttp.ClientSession, urls: dict[str, str], seconds: float = 15) -> dict[str, int]:
    """Polls until every URL is refused (or the deadline passes); returns the last statuses."""
    deadline = time.monotonic() + seconds
    while True:
        got = {node: await status(http, url) for node, url in urls.items()}
        if all(s >= 400 for s in got.values()) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


async def test_stop_revokes_the_session_urls_everywhere_and_the_slot_cannot_be_doubled(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        first = await stack.start("r1")  # a basic plan: one stream at a time
        urls = await segment_urls(http, stack, first.manifest_urls.hls_uri)
        assert set(urls) == {"shield", "edge-a", "edge-b"}
        assert {node: await status(http, url) for node, url in urls.items()} == dict.fromkeys(urls, 200)
        await stack.stop("r1", first)
        # stop and start again at once: the slot is free, and the old session's URLs must not work beside it
        second = await stack.start("r1")
        assert token_of(second.manifest_urls.hls_uri) != token_of(first.manifest_urls.hls_uri)
        assert await until_refused(http, urls) == dict.fromkeys(urls, 410)
        assert await status(http, first.manifest_urls.hls_uri) == 410
        if first.steering_uri:
            assert await status(http, first.steering_uri) == 410
        # the new session plays everywhere
        fresh = await segment_urls(http, stack, second.manifest_urls.hls_uri)
        assert {node: await status(http, url) for node, url in fresh.items()} == dict.fromkeys(fresh, 200)
        await stack.stop("r1", second)
