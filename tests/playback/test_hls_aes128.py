"""The HLS AES-128 variant of a protected title (RFC 8216 whole-segment encryption, for players without EME), on the
real playback stack and edge over loopback (tests/playback/test_license.py's: the title packaged with the variant,
its keys in the encoder's key store).

StartPlayback names the variant's multivariant playlist; the edge's media playlists name the session's raw-key URI,
which takes every licence check; FFmpeg's own HLS demuxer (PyAV), a player without EME, plays the variant with the
viewer's bearer token on its key requests, and plays nothing without it, with another account's token or once the
session has ended. (A clear title's session offers no variant: tests/playback/test_playback.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import av
import av.error
import m3u8

from marquee.v1 import playback_pb2 as pb
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback
from tests.playback.test_license import (
    bearer,
    fetch,
    get,
    protected_playback,  # noqa: F401 - 'playback': the encoder, a protected title
    refused,
    start,
    stored_keys,
)
from tests.protect import reference


def decoded_frames(url: str, headers: dict[str, str]) -> int:
    """Video frames FFmpeg's HLS demuxer decodes from ``url`` (its key requests carry ``headers``); 0 when it
    cannot open the stream or decodes nothing."""
    options = {"headers": "".join(f"{k}: {v}\r\n" for k, v in headers.items()), "rw_timeout": "10000000"}
    frames = 0
    try:
        with av.open(url, options=options, timeout=10) as container:
            for frame in container.decode(video=0):
                frames += frame is not None
    except av.error.FFmpegError:
        pass
    return frames


async def test_a_player_without_eme_plays_the_aes128_variant_through_the_licence_checks(
    playback: Playback,
    origin: Path,
) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    url = session.manifest_urls.hls_aes128_uri
    assert "/master-aes128.m3u8?token=" in url
    master = m3u8.loads((await fetch(url)).decode())
    assert master.playlists and not master.iframe_playlists
    variant = master.playlists[0].uri
    assert "/aes128/index.m3u8?token=" in variant  # on an edge, rendered per request like every media playlist
    media = m3u8.loads((await fetch(variant)).decode())
    keys = await stored_keys(playback.store)
    (key,) = media.keys
    assert key is not None and key.method == "AES-128" and key.iv is None
    assert key.uri == f"{session.license_uri.removesuffix('/license')}/keys/{keys['video'].kid.hex()}"
    # the key the licence endpoint gives decrypts what the edge serves back into the clear packaging
    status, raw, _ = await get(key.uri, bearer(md))
    assert status == 200 and raw == keys["video"].key
    base, rendition = variant.rsplit("/", 1)[0], variant.split("?")[0].rsplit("/", 3)[1]
    segment = await fetch(f"{base}/{media.segments[0].uri}")
    clear = (origin / TITLE / rendition / "seg-1.m4s").read_bytes()
    assert segment != clear
    assert reference.hls_aes128_decrypt(segment, raw, media.media_sequence.to_bytes(16, "big")) == clear

    # FFmpeg plays it with the viewer's token; the blocking decode runs in a thread while the stack answers
    assert await asyncio.to_thread(decoded_frames, url, bearer(md)) > 10
    other = bearer(playback.caller("a2", "p1"))
    assert await asyncio.to_thread(decoded_frames, url, other) == 0
    status, body, _ = await get(key.uri, other)
    refused(status, json.loads(body), 403, "LICENSE_SESSION_NOT_YOURS")
    assert await asyncio.to_thread(decoded_frames, url, {}) == 0
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=md)
    status, body, _ = await get(key.uri, bearer(md))
    refused(status, json.loads(body), 410, "LICENSE_SESSION_NOT_LIVE")
    assert await asyncio.to_thread(decoded_frames, url, bearer(md)) == 0


async def test_the_variant_is_offered_only_where_it_can_play(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    variant = m3u8.loads((await fetch(session.manifest_urls.hls_aes128_uri)).decode()).playlists[0].uri
    # the same playlist without the session's token: the edge refuses it before rendering anything
    status, _, _ = await get(variant.split("?")[0])
    assert status == 403
    # the I-frame playlist of the variant does not exist (a byte range of a whole-encrypted segment cannot decrypt)
    status, _, _ = await get(variant.replace("/aes128/index.m3u8", "/aes128/iframes.m3u8"))
    assert status == 404
    # (a clear title's session offers no variant: tests/playback/test_playback.py)
