"""Headless Chromium: Shaka Player and dash.js play a protected title's DASH stream with EME ClearKey, the licence
coming from the licence service's HTTP endpoint (the URL the session names, the viewer's access token as a bearer
token), on the real playback stack over loopback (tests/playback/test_license.py's: the encoder holds the keys).
With another account's token the licence is refused and the player reports the refusal (HTTP 403; Shaka shows
LICENSE_SESSION_NOT_YOURS from the body): no frame is decoded."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from marquee.v1 import playback_pb2 as pb
from tests.e2e.browser import PLAYERS, Browser, missing_requirements, static_site
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback
from tests.playback.test_license import protected_playback  # noqa: F401 - 'playback': the encoder, a protected title

SHAKA = PLAYERS / "node_modules" / "shaka-player" / "dist" / "shaka-player.compiled.js"
DASHJS = PLAYERS / "node_modules" / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ClearKey through the licence service</title></head>
<body>
<video id="v" width="640" height="360" muted playsinline></video>
<script src="shaka-player.compiled.js"></script>
<script>
  window.state = { phase: "starting", error: null, licenceRequests: 0 };
  const video = document.getElementById("v");
  const describe = (e) => {
    const out = { code: e && e.code, message: String((e && e.message) || e) };
    // LICENSE_REQUEST_FAILED wraps the HTTP error (BAD_HTTP_STATUS, 1001); a key request fails with it directly
    const http = e && e.code === 1001 ? e : e && e.data && e.data[0];
    if (http && http.data) {
      out.status = http.data[1];
      out.body = typeof http.data[2] === "string" ? http.data[2] : null;
    }
    return out;
  };
  window.progress = () => ({
    ...window.state,
    currentTime: video.currentTime,
    decodedFrames: video.getVideoPlaybackQuality().totalVideoFrames,
  });
  async function start() {
    const config = await (await fetch("config.json", { cache: "no-store" })).json();
    shaka.polyfill.installAll();
    const player = new shaka.Player();
    await player.attach(video);
    player.configure({
      drm: { servers: { "org.w3.clearkey": config.license }, retryParameters: { maxAttempts: 1 } },
    });
    const { LICENSE, KEY } = shaka.net.NetworkingEngine.RequestType;
    player.getNetworkingEngine().registerRequestFilter((type, request) => {
      // licences (DASH) and raw keys (HLS, KEYFORMAT "identity") both take the viewer's access token
      if (type !== LICENSE && type !== KEY) return;
      window.state.licenceRequests += 1;
      request.headers["Authorization"] = `Bearer ${config.token}`;
    });
    player.addEventListener("error", (event) => { window.state.error = describe(event.detail); });
    try {
      await player.load(config.manifest);
      window.state.phase = "loaded";
      await video.play();
      window.state.phase = "playing";
    } catch (err) {
      window.state.error = window.state.error || describe(err);
    }
  }
  start().catch((err) => { window.state.error = describe(err); });
</script>
</body></html>
"""
DASHJS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dash.js: ClearKey through the licence service</title></head>
<body>
<video id="v" width="640" height="360" muted playsinline></video>
<script src="dash.all.min.js"></script>
<script>
  window.state = { phase: "starting", error: null, licenceRequests: 0 };
  const video = document.getElementById("v");
  window.progress = () => ({
    ...window.state,
    currentTime: video.currentTime,
    decodedFrames: video.getVideoPlaybackQuality().totalVideoFrames,
  });
  async function start() {
    const config = await (await fetch("config.json", { cache: "no-store" })).json();
    const player = dashjs.MediaPlayer().create();
    const events = dashjs.MediaPlayer.events;
    player.on(events.ERROR, (e) => {
      const err = e.error || {};
      window.state.error = window.state.error || { code: err.code, message: String(err.message || "") };
    });
    // a protection event (ProtectionEvents.LICENSE_REQUEST_SENDING), not one of MediaPlayer.events
    player.on("public_licenseRequestSending", () => { window.state.licenceRequests += 1; });
    player.initialize(video, null, true);
    player.setProtectionData({
      "org.w3.clearkey": {
        serverURL: config.license,
        httpRequestHeaders: { Authorization: `Bearer ${config.token}` },
        withCredentials: false,  // a bearer token, no cookies: the endpoint answers CORS with "*"
      },
    });
    player.attachSource(config.manifest);
    window.state.phase = "loading";
  }
  start().catch((err) => { window.state.error = { code: null, message: String(err) }; });
</script>
</body></html>
"""


@pytest.fixture
def store_kind() -> str:
    """SQLite only: what the browser shows does not depend on the store (test_license.py runs on both)."""
    return "sqlite"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The page and Shaka on a static HTTP server on a free loopback port (a page of its own origin: the licence
    endpoint and the edges answer it through CORS, as they would the web player)."""
    root = tmp_path_factory.mktemp("clearkey-players")
    (root / "index.html").write_text(PAGE)
    (root / "dashjs.html").write_text(DASHJS_PAGE)
    shutil.copy(SHAKA, root / SHAKA.name)
    shutil.copy(DASHJS, root / DASHJS.name)
    with static_site(root) as base:
        yield root, base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = missing_requirements()
    absent = [p for p in (SHAKA, DASHJS) if not p.exists()]
    if missing or absent:
        pytest.fail(f"the browser check cannot run: {missing or f'{absent} missing'}")
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def open_player(
    browser: Browser,
    site: tuple[Path, str],
    session: pb.PlaybackSession,
    md: Any,
    page: str = "index.html",
    protocol: str = "dash",
) -> dict[str, Any]:
    root, base = site
    token = dict(md)["authorization"].removeprefix("Bearer ")
    manifest = session.manifest_urls.hls_uri if protocol == "hls" else session.manifest_urls.dash_uri
    config = {"manifest": manifest, "license": session.license_uri, "token": token}
    (root / "config.json").write_text(json.dumps(config))
    browser.new_page()
    browser.goto(f"{base}/{page}")
    browser.wait_for_function(
        "window.state && (window.state.error || (window.progress().currentTime > 1.5"
        " && window.progress().decodedFrames > 10))",
        timeout=45_000,
    )
    progress: dict[str, Any] = browser.evaluate("window.progress()")
    browser.goto("about:blank")
    return progress


async def start(p: Playback, md: Any) -> pb.PlaybackSession:
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile="accounts/a1/profiles/p1")
    session: pb.PlaybackSession = (await p.stub.StartPlayback(request, metadata=md)).session
    return session


@pytest.mark.parametrize("protocol", ["dash", "hls"])
async def test_shaka_plays_the_protected_stream_with_a_clearkey_licence(
    playback: Playback,
    site: tuple[Path, str],
    browser: Browser,
    protocol: str,
) -> None:
    """DASH: the W3C ClearKey licence exchange. HLS: the raw keys the media playlists name (KEYFORMAT "identity",
    what Shaka takes for ClearKey from HLS), from the same service with the same checks."""
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    assert session.license_uri
    # the driver's calls block: in a thread, so the stack (on this event loop) answers the page meanwhile
    progress = await asyncio.to_thread(open_player, browser, site, session, md, "index.html", protocol)
    assert progress["error"] is None, (progress, browser.console())
    assert progress["licenceRequests"] >= 1
    assert progress["decodedFrames"] > 10 and progress["currentTime"] > 1.5

    # another account's token on the same session: the licence is refused, and the player says why
    other = playback.caller("a2", "p1")
    progress = await asyncio.to_thread(open_player, browser, site, session, other, "index.html", protocol)
    error = progress["error"]
    # LICENSE_REQUEST_FAILED for the licence; BAD_HTTP_STATUS for the key request of the HLS parser
    assert error is not None and error["code"] == (6007 if protocol == "dash" else 1001), progress
    assert error["status"] == 403 and "LICENSE_SESSION_NOT_YOURS" in (error["body"] or ""), error
    assert progress["decodedFrames"] == 0


async def test_dashjs_plays_the_protected_stream_with_a_clearkey_licence(
    playback: Playback,
    site: tuple[Path, str],
    browser: Browser,
) -> None:
    """dash.js takes the same licence endpoint (its ClearKey protection data with the bearer token as a header)."""
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    progress = await asyncio.to_thread(open_player, browser, site, session, md, "dashjs.html")
    assert progress["error"] is None, (progress, browser.console())
    assert progress["licenceRequests"] >= 1
    assert progress["decodedFrames"] > 10 and progress["currentTime"] > 1.5

    other = playback.caller("a2", "p1")
    progress = await asyncio.to_thread(open_player, browser, site, session, other, "dashjs.html")
    error = progress["error"]
    assert error is not None and error["code"] == 114, progress  # MEDIA_KEY_MESSAGE_LICENSER_ERROR_CODE
    assert "(403)" in error["message"], error  # dash.js reports the status (not the JSON body's reason)
    assert progress["decodedFrames"] == 0
