"""Serving real encoded segments over HTTP/1.1: byte-exact full and ranged reads, HEAD, ETags, CORS, keep-alive."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from tests.edge.conftest import TITLE, EdgeFactory
from tests.edge.http import get, read_reply, request


async def test_full_and_ranged_reads_are_byte_exact(
    origin: Path, segment_keys: list[str], make_edge: EdgeFactory
) -> None:
    edge = make_edge("edge-a", origin)
    rng = random.Random(7)
    for key in segment_keys:
        data = (origin / key).read_bytes()
        first = await get(edge.port, f"/v/{key}")
        assert first.status == 200, key
        assert first.body == data
        assert first.headers["x-cache"] == "MISS"
        assert int(first.headers["content-length"]) == len(data)
        again = await get(edge.port, f"/v/{key}")
        assert again.body == data and again.headers["x-cache"] == "HIT-MEMORY"
        for _ in range(3):
            a = rng.randrange(len(data))
            b = rng.randrange(a, len(data))
            part = await get(edge.port, f"/v/{key}", Range=f"bytes={a}-{b}")
            assert part.status == 206
            assert part.body == data[a : b + 1]
            assert part.headers["content-range"] == f"bytes {a}-{b}/{len(data)}"
        suffix = await get(edge.port, f"/v/{key}", Range="bytes=-100")
        assert suffix.body == data[-100:]
        open_ended = await get(edge.port, f"/v/{key}", Range=f"bytes={len(data) // 2}-")
        assert open_ended.body == data[len(data) // 2 :]


async def test_a_ranged_miss_streams_just_the_range(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    key = f"{TITLE}/480p/seg-2.m4s"
    data = (origin / key).read_bytes()
    part = await get(edge.port, f"/v/{key}", Range="bytes=1000-2999")
    assert (part.status, part.headers["x-cache"], part.body) == (206, "MISS", data[1000:3000])
    assert (await get(edge.port, f"/v/{key}")).body == data


async def test_head_etag_and_caching_headers(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    key = f"{TITLE}/360p/seg-1.m4s"
    size = (origin / key).stat().st_size
    head = await request(edge.port, f"/v/{key}", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) == size
    assert head.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert head.headers["content-type"] == "video/iso.segment"
    assert head.headers["accept-ranges"] == "bytes"
    etag = head.headers["etag"]
    assert etag.startswith('"')
    not_modified = await get(edge.port, f"/v/{key}", If_None_Match=etag)
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert (await get(edge.port, f"/v/{key}", If_None_Match=f'"other", W/{etag}')).status == 304
    assert (await get(edge.port, f"/v/{key}", If_None_Match='"other"')).status == 200
    init = await get(edge.port, f"/v/{TITLE}/480p/init.mp4")
    assert init.headers["content-type"] == "video/mp4"
    media = await get(edge.port, f"/v/{TITLE}/media.json")
    assert media.headers["content-type"] == "application/json"


async def test_cors_for_browser_players(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    key = f"/v/{TITLE}/360p/seg-1.m4s"
    pre = await request(
        edge.port,
        key,
        method="OPTIONS",
        headers={"Origin": "http://player.example", "Access-Control-Request-Headers": "range"},
    )
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "GET" in pre.headers["access-control-allow-methods"]
    assert "Range" in pre.headers["access-control-allow-headers"]
    got = await get(edge.port, key, Origin="http://player.example")
    assert got.headers["access-control-allow-origin"] == "*"
    assert "Content-Range" in got.headers["access-control-expose-headers"]


async def test_methods_and_unknown_paths(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    post = await request(edge.port, f"/v/{TITLE}/media.json", method="POST")
    assert post.status == 405 and "GET" in post.headers["allow"]
    assert (await get(edge.port, f"/v/{TITLE}/480p/seg-999.m4s")).status == 404
    assert (await get(edge.port, "/elsewhere/x/y")).status == 404
    assert (await get(edge.port, "/healthz")).status == 200


async def test_keep_alive_serves_many_requests_on_one_connection(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    keys = [f"{TITLE}/360p/seg-{i}.m4s" for i in (1, 2, 3)]
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    try:
        for _ in range(2):
            for key in keys:
                writer.write(f"GET /v/{key} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                reply = await asyncio.wait_for(read_reply(reader), 30)
                assert reply.body == (origin / key).read_bytes()
    finally:
        writer.close()
    assert edge.stats()["connections"] == 1
