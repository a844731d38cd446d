"""The built player's files: content types, cache headers, single-page-app fallback, no escaping the directory,
and a helpful page when nothing is built."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from multidict import CIMultiDict

from tests.gateway.conftest import Running, config, start_gateway
from tests.gateway.probe import SERVICE

INDEX = "<!doctype html><title>Marquee</title><div id=app></div>"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "index-B3xq9Zk1.js").write_text("console.log('player')")
    (root / "assets" / "index-Cc81xQpL.css").write_text("body{}")
    (root / "assets" / "logo-D4a.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "manifest.webmanifest").write_text("{}")
    (root / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "secret.txt").write_text("outside")
    return root


@pytest.fixture
async def site(dist: Path, probe: str) -> AsyncIterator[Running]:
    async with start_gateway(config(static_dir=dist), {SERVICE: probe}) as running:
        yield running


async def _get(site: Running, path: str, method: str = "GET") -> tuple[int, CIMultiDict[str], bytes]:
    async with site.session.request(method, f"{site.url}{path}") as r:
        return r.status, r.headers.copy(), await r.read()


@pytest.mark.parametrize(
    ("path", "content_type", "cache"),
    [
        ("/", "text/html; charset=utf-8", "no-cache"),
        ("/index.html", "text/html; charset=utf-8", "no-cache"),
        ("/assets/index-B3xq9Zk1.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"),
        ("/assets/index-Cc81xQpL.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"),
        ("/assets/logo-D4a.svg", "image/svg+xml; charset=utf-8", "public, max-age=31536000, immutable"),
        ("/manifest.webmanifest", "application/manifest+json; charset=utf-8", "public, max-age=300"),
        ("/favicon.ico", "image/x-icon", "public, max-age=300"),
    ],
)
async def test_files_with_types_and_cache_headers(site: Running, path: str, content_type: str, cache: str) -> None:
    status, headers, _ = await _get(site, path)
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert headers["Cache-Control"] == cache
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/title/42", "/search", "/profiles/", "/watch/big-buck-bunny"])
async def test_app_routes_fall_back_to_index(site: Running, path: str) -> None:
    status, headers, body = await _get(site, path)
    assert status == 200 and body.decode() == INDEX
    assert headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path", ["/missing.js", "/assets/gone-123.css", "/.env", "/assets/../../secret.txt", "/%2e%2e/secret.txt"]
)
async def test_missing_and_forbidden_files_are_404(site: Running, path: str) -> None:
    status, _, body = await _get(site, path)
    assert status == 404, (path, body)
    assert b"outside" not in body and b"SECRET" not in body


async def test_head_and_conditional_requests(site: Running) -> None:
    status, headers, body = await _get(site, "/assets/index-B3xq9Zk1.js", "HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len("console.log('player')")
    async with site.session.get(
        f"{site.url}/assets/index-B3xq9Zk1.js", headers={"If-None-Match": headers["ETag"]}
    ) as r:
        assert r.status == 304


async def test_without_a_build_a_page_says_so(probe: str, tmp_path: Path) -> None:
    async with start_gateway(config(static_dir=tmp_path / "not-built"), {SERVICE: probe}) as site:
        for path in ("/", "/title/42"):
            status, headers, body = await _get(site, path)
            assert status == 200 and b"not built" in body
            assert headers["Content-Type"].startswith("text/html")
        # the API is served all the same
        assert (await site.echo()).code.name == "OK"


async def test_precompressed_siblings_are_served_to_clients_that_accept_them(site: Running, dist: Path) -> None:
    script = dist / "assets" / "index-B3xq9Zk1.js"
    (dist / "assets" / "index-B3xq9Zk1.js.gz").write_bytes(gzip.compress(script.read_bytes()))
    async with site.session.get(
        f"{site.url}/assets/index-B3xq9Zk1.js", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        assert r.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert gzip.decompress(await r.read()) == script.read_bytes()
