"""HLS media playlists rendered by the edge from the title's media description, with the request's token on
every segment URI: a player that follows a multivariant playlist's variant URIs to an edge can play through it."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

import m3u8

from marquee.native import Presentation, TokenKeyring
from tests.edge.conftest import KEY_ID, SECRET, TITLE, EdgeFactory, sign
from tests.edge.http import get, request


async def test_a_player_can_follow_the_playlists_through_the_edge(
    origin: Path, make_edge: EdgeFactory, keyring: TokenKeyring
) -> None:
    shield = make_edge("shield", origin)
    edge = make_edge("edge-a", shield, token_keys={KEY_ID: SECRET})
    token = sign(keyring)
    media = json.loads((origin / TITLE / "media.json").read_text())
    # the multivariant playlist as playback renders it: variants on this edge, the session token everywhere
    base = f"http://127.0.0.1:{edge.port}/v/{TITLE}/"
    master = m3u8.loads(
        Presentation.from_json(json.dumps(media)).hls_multivariant(token=token, pathways=[("edge-a", base)])
    )
    assert len(master.playlists) == len(media["video"])
    for variant in master.playlists:
        path = variant.uri.removeprefix(f"http://127.0.0.1:{edge.port}")
        reply = await get(edge.port, path)
        assert reply.status == 200 and reply.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert reply.headers["cache-control"].startswith("private")
        playlist = m3u8.loads(reply.body.decode())
        rendition = path.split("/")[3]
        described = next(r for r in media["video"] if r["id"] == rendition)
        assert len(playlist.segments) == len(described["segments"])
        # every segment, fetched where the playlist points, with the token it carries: byte-exact
        for n, segment in enumerate(playlist.segments, start=described["start_number"]):
            assert segment.uri == f"seg-{n}.m4s?token={token}"
            url = urljoin(variant.uri, segment.uri).removeprefix(f"http://127.0.0.1:{edge.port}")
            got = await get(edge.port, url)
            assert got.status == 200 and got.body == (origin / TITLE / rendition / f"seg-{n}.m4s").read_bytes()
        init = await get(edge.port, urljoin(variant.uri, playlist.segment_map[0].uri).split(f"{edge.port}")[1])
        assert init.body == (origin / TITLE / rendition / "init.mp4").read_bytes()
    iframes = await get(edge.port, f"/v/{TITLE}/480p/iframes.m3u8?token={token}")
    assert iframes.status == 200 and "#EXT-X-I-FRAMES-ONLY" in iframes.body.decode()
    assert edge.stats()["upstream_fetches"] >= 1


async def test_playlist_requests_are_checked_like_segments(
    origin: Path, make_edge: EdgeFactory, keyring: TokenKeyring
) -> None:
    edge = make_edge("edge-a", origin, token_keys={KEY_ID: SECRET})
    token = sign(keyring)
    assert (await get(edge.port, f"/v/{TITLE}/480p/index.m3u8")).status == 403
    assert (await get(edge.port, f"/v/{TITLE}/480p/index.m3u8?token={sign(keyring, acl='/v/other/*')}")).status == 403
    assert (await get(edge.port, f"/v/{TITLE}/4320p/index.m3u8?token={token}")).status == 404
    assert (await get(edge.port, f"/v/no-such-title/480p/index.m3u8?token={sign(keyring, acl='/v/*')}")).status == 404
    head = await request(edge.port, f"/v/{TITLE}/480p/index.m3u8?token={token}", method="HEAD")
    assert head.status == 200 and int(head.headers["content-length"]) > 0 and head.body == b""
