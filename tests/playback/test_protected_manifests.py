"""A protected title through the real playback path on loopback (catalog, steering, playback's manifest endpoint, a
real edge): the session's DASH manifest carries ContentProtection with the title's KIDs, the edge's media playlists
carry EXT-X-KEY, and the init segment and segments the edge serves are the encrypted ones."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from xml.etree import ElementTree

import aiohttp
import m3u8
import pytest

from marquee.v1 import playback_pb2 as pb
from services.encoder.media.pipeline import encode_title
from services.encoder.media.protect import Protection
from tests.edge.conftest import TITLE
from tests.encoder.conftest import make_source
from tests.playback.conftest import Playback
from tests.protect.titles import TEST_KEYS

CLEARKEY = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
NS = {"d": "urn:mpeg:dash:schema:mpd:2011", "cenc": "urn:mpeg:cenc:2013"}


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The playback stack's origin holding the title packaged with protection = "cenc"."""
    root = tmp_path_factory.mktemp("protected-origin")
    source = make_source(tmp_path_factory.mktemp("src") / "master.mp4", width=640, height=360, seconds=8.5)
    encode_title(source, TITLE, root, preset="ultrafast", protection=Protection("cenc", TEST_KEYS))
    return root


async def fetch(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.read()


async def test_protected_title_plays_out_encrypted_and_announced(playback: Playback, origin: Path) -> None:
    md = playback.caller("a1", "p1")
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile="accounts/a1/profiles/p1")
    session = (await playback.stub.StartPlayback(request, metadata=md)).session
    status, mpd_bytes = await fetch(session.manifest_urls.dash_uri)
    assert status == 200
    mpd = ElementTree.fromstring(mpd_bytes)
    sets = mpd.findall("d:Period/d:AdaptationSet", NS)
    assert [s.get("contentType") for s in sets] == ["video", "audio"]
    for kind, adaptation in zip(("video", "audio"), sets, strict=True):
        mp4 = adaptation.find("d:ContentProtection[@schemeIdUri='urn:mpeg:dash:mp4protection:2011']", NS)
        assert mp4 is not None and mp4.get("value") == "cenc"
        assert mp4.get(f"{{{NS['cenc']}}}default_KID") == str(uuid.UUID(bytes=TEST_KEYS[kind][0]))
        clearkey = adaptation.find(
            "d:ContentProtection[@schemeIdUri='urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e']", NS
        )
        # ClearKey's descriptor as DASH-IF IOP has it: no pssh of another system (the init segment carries it)
        assert clearkey is not None and clearkey.find("cenc:pssh", NS) is None
    # HLS: the edge renders the media playlists; each names its track type's key
    status, text = await fetch(session.manifest_urls.hls_uri)
    assert status == 200
    master = m3u8.loads(text.decode())
    variant = master.playlists[0].uri
    status, media_text = await fetch(variant)
    assert status == 200
    media = m3u8.loads(media_text.decode())
    key, identity = [k for k in media.keys if k is not None]
    assert key.method == "SAMPLE-AES-CTR" and key.keyformat == "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
    assert f"KEYID=0x{TEST_KEYS['video'][0].hex()}" in media_text.decode()
    assert base64.b64decode(key.uri.removeprefix("data:text/plain;base64,"))[4:8] == b"pssh"
    # and the session's raw key on playback's endpoint (KEYFORMAT "identity"), for players that take ClearKey so
    manifests = session.manifest_urls.dash_uri.split("/sessions/")[0]
    assert identity.method == "SAMPLE-AES-CTR" and identity.keyformat == "identity"
    assert identity.uri == f"{manifests}/{session.name.replace('playbackSessions', 'sessions')}/keys/" + (
        TEST_KEYS["video"][0].hex()
    )
    base = variant.rsplit("/", 1)[0]
    status, init = await fetch(f"{base}/{media.segment_map[0].uri}")
    assert status == 200 and b"encv" in init and b"tenc" in init
    status, segment = await fetch(f"{base}/{media.segments[0].uri}")
    assert status == 200 and b"senc" in segment
    rendition = variant.split("?")[0].rsplit("/", 2)[1]
    assert segment == (origin / TITLE / rendition / "seg-1.m4s").read_bytes()
