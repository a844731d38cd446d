"""Hostile and broken input: each gets its proper status and the edge stays up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from marquee.native import TokenKeyring
from tests.edge.conftest import KEY_ID, SECRET, TITLE, EdgeFactory, sign
from tests.edge.http import get, request

SEGMENT = f"/v/{TITLE}/480p/seg-1.m4s"


async def test_hostile_ranges(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    data = (origin / SEGMENT.removeprefix("/v/")).read_bytes()
    n = len(data)
    cases = {
        "bytes=0-18446744073709551615": (206, data),
        "bytes=0-99999999999999999999999999": (206, data),
        "bytes=18446744073709551615-": (416, None),
        f"bytes={n}-": (416, None),
        "bytes=-0": (416, None),
        "bytes=5-1": (416, None),
        "bytes=-5-9": (416, None),
        "bytes=abc": (416, None),
        ",".join(["bytes=0-10"] + ["0-1000000"] * 500): (200, data),  # overlapping ranges: whole body, once
        "bytes=" + ",".join(f"{i}-{i + 1}" for i in range(200)): (200, data),
        "lines=1-2": (200, data),
    }
    for header, (status, body) in cases.items():
        reply = await get(edge.port, SEGMENT, Range=header)
        assert reply.status == status, header[:60]
        if body is not None:
            assert reply.body == body
        if status == 416:
            assert reply.headers["content-range"] == f"bytes */{n}"
    assert (await get(edge.port, "/healthz")).status == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/v/{TITLE}/../../etc/passwd",
        f"/v/{TITLE}/%2e%2e/%2e%2e/etc/passwd",
        f"/v/{TITLE}/..%2f..%2fetc%2fpasswd",
        f"/v/{TITLE}/480p%2fseg-1.m4s",
        f"/v/{TITLE}/480p/seg-1.m4s%00",
        "/v/.staging/x/y",
        f"/v/{TITLE}//480p/seg-1.m4s",
        f"/v/{TITLE}/480p/%5c..%5cx",
        f"/v/{TITLE}/480p/%zz",
    ],
)
async def test_traversal_is_refused(origin: Path, make_edge: EdgeFactory, path: str) -> None:
    edge = make_edge("edge-a", origin)
    reply = await get(edge.port, path)
    assert reply.status == 400, path
    assert edge.stats()["upstream_fetches"] == 0


async def test_huge_and_numerous_headers_get_431(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin, max_header_bytes=16384, max_headers=32)
    huge = await get(edge.port, SEGMENT, X_Big="a" * 100_000)
    assert huge.status == 431
    many = await request(edge.port, SEGMENT, headers={f"X-H{i}": "v" for i in range(100)})
    assert many.status == 431
    assert (await get(edge.port, SEGMENT)).status == 200


async def test_garbage_on_the_wire_does_not_hurt_the_edge(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    for raw in [
        b"\x00\xff\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET " + b"/a" * 10000 + b" HTTP/1.1\r\n\r\n",
    ]:
        try:
            reply = await request(edge.port, "/", raw=raw, timeout=10)
        except (ConnectionError, asyncio.IncompleteReadError):
            continue  # closing the connection is a proper answer to garbage
        assert reply.status >= 400
    assert (await get(edge.port, SEGMENT)).status == 200


async def test_signed_urls(origin: Path, make_edge: EdgeFactory, keyring: TokenKeyring) -> None:
    edge = make_edge("edge-a", origin, token_keys={KEY_ID: SECRET})
    good = sign(keyring)
    assert (await get(edge.port, f"{SEGMENT}?token={good}")).status == 200
    assert (await get(edge.port, f"{SEGMENT}?foo=1&token={good}")).status == 200
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    expired = keyring.sign([f"/v/{TITLE}/*"], int(time.time()) - 1)
    wrong_path = sign(keyring, acl="/v/another-title/*")
    stranger = TokenKeyring({"k2": b"another-secret-0123456789"}, "k2").sign([f"/v/{TITLE}/*"], int(time.time()) + 60)
    foreign_same_kid = TokenKeyring({KEY_ID: b"a-different-secret-987654"}, KEY_ID).sign(
        [f"/v/{TITLE}/*"], int(time.time()) + 60
    )
    cases = {
        SEGMENT: 403,
        f"{SEGMENT}?token=": 403,
        f"{SEGMENT}?token={tampered}": 403,
        f"{SEGMENT}?token={expired}": 410,
        f"{SEGMENT}?token={wrong_path}": 403,
        f"{SEGMENT}?token={stranger}": 403,
        f"{SEGMENT}?token={foreign_same_kid}": 403,
        f"{SEGMENT}?token={'x' * 10000}": 403,
    }
    for path, status in cases.items():
        assert (await get(edge.port, path)).status == status, path[:120]
    assert edge.stats()["upstream_fetches"] == 1, "refused requests never reach upstream"


async def test_upstream_failures_become_502_and_404(origin: Path, make_edge: EdgeFactory) -> None:
    shield = make_edge("shield", origin)
    edge = make_edge("edge-a", shield, upstream_retries=2, upstream_backoff_ms=10, upstream_timeout_ms=2000)
    assert (await get(edge.port, f"/v/{TITLE}/480p/seg-404.m4s")).status == 404
    assert edge.stats()["upstream_retries"] == 0, "a 404 is an answer, not a failure"
    shield.stop()
    down = await get(edge.port, SEGMENT)
    assert down.status == 502
    s = edge.stats()
    assert s["upstream_retries"] == 2 and s["upstream_errors"] == 2
    assert (await get(edge.port, "/healthz")).status == 200
