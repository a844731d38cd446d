"""Headless Chromium: Shaka Player plays a protected title's DASH stream with EME ClearKey and its HLS stream
through the raw keys its media playlists name, and dash.js plays the DASH stream, the licence (or key) coming from
the licence service's HTTP endpoint (the URL the session names, the viewer's access token as a bearer token), on
the real playback stack over loopback (tests/playback/test_license.py's: the encoder holds the keys).

Without a licence, each of the three players fails and reports the service's refusal, with no frame decoded:
another account's session (HTTP 403, LICENSE_SESSION_NOT_YOURS), a session ended by StopPlayback (410,
LICENSE_SESSION_NOT_LIVE) and a title that left the caller's region (loopback is US) after the session started
(403, GEO_BLOCKED). For the last two the page holds its first licence (key) request until the session is stopped
or the title's regions change: the manifests and playlists were fetched while the session was live, as a player
starting when it ends would have them (the manifest endpoint answers an ended session's manifest 410 itself).
Shaka reports the status and the JSON body (its reason); dash.js the status in its message and the body in its
error's data."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from marquee.v1 import catalog_pb2
from marquee.v1 import playback_pb2 as pb
from tests.e2e.browser import PLAYERS, Browser, missing_requirements, static_site
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback
from tests.playback.test_license import protected_playback  # noqa: F401 - 'playback': the encoder, a protected title

SHAKA = PLAYERS / "node_modules" / "shaka-player" / "dist" / "shaka-player.compiled.js"
DASHJS = PLAYERS / "node_modules" / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js"
# both pages: config.json says what to play with which token; with "hold", every licence (key) request waits for
# window.release() (the test changes the session or the title meanwhile); licenceUris are the URLs asked
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ClearKey through the licence service</title></head>
<body>
<video id="v" width="640" height="360" muted playsinline></video>
<script src="shaka-player.compiled.js"></script>
<script>
  window.state = { phase: "starting", error: null, errors: [], licenceRequests: 0, licenceUris: [], held: 0 };
  const released = new Promise((resolve) => { window.release = resolve; });
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
  const report = (e) => {  // the first error is the one the player stopped on
    const error = describe(e);
    window.state.errors.push(error);
    window.state.error = window.state.error || error;
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
      if (type !== LICENSE && type !== KEY) return undefined;
      window.state.licenceRequests += 1;
      window.state.licenceUris.push(request.uris[0]);
      request.headers["Authorization"] = `Bearer ${config.token}`;
      if (!config.hold) return undefined;
      window.state.held += 1;
      return released;
    });
    player.addEventListener("error", (event) => report(event.detail));
    try {
      await player.load(config.manifest);
      window.state.phase = "loaded";
      await video.play();
      window.state.phase = "playing";
    } catch (err) {
      report(err);
    }
  }
  start().catch(report);
</script>
</body></html>
"""
DASHJS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dash.js: ClearKey through the licence service</title></head>
<body>
<video id="v" width="640" height="360" muted playsinline></video>
<script src="dash.all.min.js"></script>
<script>
  window.state = { phase: "starting", error: null, errors: [], licenceRequests: 0, licenceUris: [], held: 0 };
  const released = new Promise((resolve) => { window.release = resolve; });
  const video = document.getElementById("v");
  const report = (error) => {
    window.state.errors.push(error);
    window.state.error = window.state.error || error;
  };
  window.progress = () => ({
    ...window.state,
    currentTime: video.currentTime,
    decodedFrames: video.getVideoPlaybackQuality().totalVideoFrames,
  });
  async function start() {
    const config = await (await fetch("config.json", { cache: "no-store" })).json();
    const player = dashjs.MediaPlayer().create();
    // a refusal is final: no retries (3 by default, a second apart), as the Shaka page configures
    player.updateSettings({ streaming: { retryAttempts: { license: 0 } } });
    player.on(dashjs.MediaPlayer.events.ERROR, (e) => {
      const err = e.error || {};
      // a refused licence: the status in the message, the response (ClearKey's is parsed as JSON) in the data
      const data = err.data || {};
      const body = data.serverResponse;
      report({
        code: err.code,
        message: String(err.message || ""),
        status: data.responseCode,
        body: body == null ? null : typeof body === "string" ? body : JSON.stringify(body),
      });
    });
    player.registerLicenseRequestFilter((request) => {
      window.state.licenceRequests += 1;
      window.state.licenceUris.push(request.url);
      if (!config.hold) return Promise.resolve();
      window.state.held += 1;
      return released;
    });
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
  start().catch((err) => report({ code: null, message: String(err) }));
</script>
</body></html>
"""


@dataclass(frozen=True)
class Player:
    page: str
    protocol: str
    refusal_code: int  # the error code it reports a refused licence (key) with


PLAYER_KINDS = {
    "shaka-dash": Player("index.html", "dash", 6007),  # LICENSE_REQUEST_FAILED (wrapping BAD_HTTP_STATUS)
    "shaka-hls": Player("index.html", "hls", 1001),  # BAD_HTTP_STATUS: the HLS parser's key request
    "dashjs": Player("dashjs.html", "dash", 114),  # MEDIA_KEY_MESSAGE_LICENSER_ERROR_CODE
}

Change = Callable[[Playback, pb.PlaybackSession], Awaitable[None]]


async def stop(p: Playback, session: pb.PlaybackSession) -> None:
    """StopPlayback by the session's own profile (a no-op for a session already ended)."""
    await p.stub.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=p.caller("a1", "p1"))


async def licensed_regions(p: Playback, regions: list[str]) -> None:
    title = catalog_pb2.Title(name=f"titles/{TITLE}", licensed_regions=regions)
    mask = field_mask_pb2.FieldMask(paths=["licensed_regions"])
    await p.catalog.UpdateTitle(catalog_pb2.UpdateTitleRequest(title=title, update_mask=mask), metadata=p.admin)


async def leave_region(p: Playback, session: pb.PlaybackSession) -> None:
    await licensed_regions(p, ["JP"])  # loopback is US


async def return_to_region(p: Playback, session: pb.PlaybackSession) -> None:
    await licensed_regions(p, [])


@dataclass(frozen=True)
class Refusal:
    what: str
    status: int
    reason: str
    viewer: tuple[str, str] = ("a1", "p1")  # whose token the page sends (the session is always a1/p1's)
    meanwhile: Change | None = None  # made while the page holds its licence request
    undo: Change | None = None  # made after, whatever happened


# the geo-blocked title is licensed again before the ended session's case starts a session for it
REFUSALS = (
    Refusal("another account's session", 403, "LICENSE_SESSION_NOT_YOURS", viewer=("a2", "p1")),
    Refusal("a geo-blocked region", 403, "GEO_BLOCKED", meanwhile=leave_region, undo=return_to_region),
    Refusal("an ended session", 410, "LICENSE_SESSION_NOT_LIVE", meanwhile=stop),
)


@pytest.fixture
def store_kind() -> str:
    """SQLite only: what the browser shows does not depend on the store (test_license.py runs on both)."""
    return "sqlite"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The pages and the players on a static HTTP server on a free loopback port (pages of their own origin: the
    licence endpoint and the edges answer them through CORS, as they would the web player)."""
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
    browser: Browser, site: tuple[Path, str], session: pb.PlaybackSession, md: Any, player: Player, hold: bool
) -> None:
    """A fresh page (a new browser context: nothing of the previous page's is left) playing ``session`` with the
    token of ``md``; with ``hold``, returns once the page holds its first licence (key) request."""
    root, base = site
    token = dict(md)["authorization"].removeprefix("Bearer ")
    manifest = session.manifest_urls.hls_uri if player.protocol == "hls" else session.manifest_urls.dash_uri
    config = {"manifest": manifest, "license": session.license_uri, "token": token, "hold": hold}
    (root / "config.json").write_text(json.dumps(config))
    browser.new_page()
    browser.goto(f"{base}/{player.page}")
    if hold:
        browser.wait_for_function("window.state && (window.state.held > 0 || window.state.error)", timeout=45_000)


def outcome(browser: Browser) -> dict[str, Any]:
    """Lets the held requests go, and what the page reports once it plays or fails; then leaves it."""
    browser.evaluate("window.release()")
    browser.wait_for_function(
        "window.state.error || (window.progress().currentTime > 1.5 && window.progress().decodedFrames > 10)",
        timeout=45_000,
    )
    progress: dict[str, Any] = browser.evaluate("window.progress()")
    browser.goto("about:blank")
    return progress


async def play(
    p: Playback,
    browser: Browser,
    site: tuple[Path, str],
    session: pb.PlaybackSession,
    player: Player,
    refusal: Refusal | None = None,
) -> dict[str, Any]:
    """What the page reports of ``session`` played by ``player``: by its own profile, or as ``refusal`` says (its
    viewer's token, its change made while the page holds its licence request). The driver's calls block: in
    threads, so the stack (on this event loop) answers the page meanwhile."""
    md = p.caller(*(refusal.viewer if refusal else ("a1", "p1")))
    meanwhile = refusal.meanwhile if refusal else None
    await asyncio.to_thread(open_player, browser, site, session, md, player, meanwhile is not None)
    if meanwhile is not None:
        await meanwhile(p, session)
    return await asyncio.to_thread(outcome, browser)


async def start(p: Playback, md: Any) -> pb.PlaybackSession:
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile="accounts/a1/profiles/p1")
    session: pb.PlaybackSession = (await p.stub.StartPlayback(request, metadata=md)).session
    return session


@pytest.mark.parametrize("kind", list(PLAYER_KINDS))
async def test_the_players_play_with_a_licence_and_report_every_refusal(
    playback: Playback,
    site: tuple[Path, str],
    browser: Browser,
    kind: str,
) -> None:
    """Shaka DASH: the W3C ClearKey licence exchange. Shaka HLS: the raw keys the media playlists name (KEYFORMAT
    "identity", what Shaka takes for ClearKey from HLS), from the same service with the same checks. dash.js: the
    licence endpoint in its ClearKey protection data, the bearer token as a header. Then each refusal, on a
    session of its own: the player fails on it, says why, and decodes nothing."""
    player = PLAYER_KINDS[kind]
    session = await start(playback, playback.caller("a1", "p1"))
    assert session.license_uri
    progress = await play(playback, browser, site, session, player)
    assert progress["error"] is None, (progress, browser.console())
    assert progress["licenceRequests"] >= 1
    assert progress["decodedFrames"] > 10 and progress["currentTime"] > 1.5
    await stop(playback, session)

    for refusal in REFUSALS:
        session = await start(playback, playback.caller("a1", "p1"))
        try:
            progress = await play(playback, browser, site, session, player, refusal)
        finally:
            if refusal.undo is not None:
                await refusal.undo(playback, session)
            await stop(playback, session)
        error, case = progress["error"], (refusal.what, progress)
        assert error is not None and error["code"] == player.refusal_code, case
        assert error["status"] == refusal.status and refusal.reason in (error["body"] or ""), case
        if kind == "dashjs":  # its message names the status (and the JSON body only through the error's data)
            assert f"({refusal.status})" in error["message"], case
        assert progress["decodedFrames"] == 0, case
        # the page asked this session's licence (or keys), nothing of a previous page's
        own = session.license_uri.removesuffix("/license")
        assert progress["licenceRequests"] >= 1 and all(u.startswith(own) for u in progress["licenceUris"]), case
