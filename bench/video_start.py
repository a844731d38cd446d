"""Video start time and rebuffering of the web player in headless Chromium, on the real platform.

1. Start time, play request to first frame (requestVideoFrameCallback), p50 and p99 over --plays plays of
   different titles: the web player (a click on Play: StartPlayback over gRPC-web through the gateway, the player
   code, Shaka Player on the session's DASH manifest) next to bare players on a session started beforehand,
   measured from their load call: Shaka Player (DASH) and hls.js (HLS). Targets: p50 < 500 ms, p99 < 1 s.
2. Rebuffer ratio (stalled time over stalled plus playing time) under a bandwidth-drop schedule applied as a
   per-connection rate limit at both edges, the web player next to hls.js on the same schedule and title
   length. Target: < 0.1%. Stalls are measured in the page the same way for both (the video should be playing
   and its currentTime stands still for 250 ms or more), and by the web player's own QoE counters.

`marquee up` runs with its demo content (the synthetic 720p master made --seconds long: 720p/480p/360p at
2.5/1/0.5 Mbit/s) and two edge processes on loopback addresses of their own, as in tests/e2e.
Run: ./dev bench video_start [--plays 30] [--seconds 180]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from marquee.v1 import accounts_pb2, accounts_pb2_grpc, catalog_pb2, playback_pb2, playback_pb2_grpc
from tests.e2e.browser import PLAYERS, Browser, missing_requirements
from tests.e2e.harness import Platform, start_platform
from tests.e2e.viewer import sign_in

HLS_JS = PLAYERS / "node_modules" / "hls.js" / "dist" / "hls.min.js"
SHAKA = PLAYERS / "node_modules" / "shaka-player" / "dist" / "shaka-player.compiled.js"
BARE_PAGE = "<!doctype html><html><body style='margin:0'><video data-testid=video muted></video></body></html>"
# The bare players' page is written over a page the gateway served (an app route it does not know): a page from a
# loopback address may fetch from the loopback edges, which Chromium's local network access rules refuse to
# about:blank and to pages the browser made up.
BARE_PATH = "/bench-bare-player"

# (seconds after the first frame, per-connection bytes/s at both edges; 0 = no limit). 300 kB/s carries 720p
# (2.5 Mbit/s) with little margin, 150 kB/s 480p, 80 kB/s only 360p (0.54 Mbit/s peak) beside the audio.
SCHEDULE = ((0, 0), (20, 300_000), (50, 150_000), (90, 80_000), (130, 0), (150, 150_000))

# Stall accounting in the page, the same for every player: playing time is time during which currentTime moved;
# a stall is currentTime standing still for 250 ms or more while the video is meant to play (after it started).
QOE_MONITOR = """(() => {
  const v = document.querySelector('[data-testid=video]');
  const m = window.__qoe = {playMs: 0, stallMs: 0, stalls: 0, waiting: 0, frozen: 0, started: false,
                            last: v.currentTime, t: performance.now()};
  v.addEventListener('waiting', () => { if (m.started && !v.seeking) m.waiting++; });
  window.setInterval(() => {
    const now = performance.now(), dt = now - m.t;
    m.t = now;
    if (v.paused || v.seeking || v.ended || v.readyState === 0) { m.frozen = 0; m.last = v.currentTime; return; }
    if (v.currentTime !== m.last) {
      m.started = true; m.playMs += dt; m.last = v.currentTime;
      if (m.frozen >= 250) { m.stalls++; m.stallMs += m.frozen; }
      m.frozen = 0;
    } else if (m.started) {
      m.frozen += dt;
    }
  }, 50);
  return true;
})()"""

FIRST_FRAME = "new Promise(r => document.querySelector('[data-testid=video]').requestVideoFrameCallback(() => r()))"

SHAKA_LOAD = """(async () => {
  const v = document.querySelector('[data-testid=video]');
  shaka.polyfill.installAll();
  const t0 = performance.now();
  const player = window.__player = new shaka.Player();
  await player.attach(v);
  const first = %s.then(() => performance.now() - t0);
  await player.load(%r);
  v.play();
  return await first;
})()"""

HLS_LOAD = """(async () => {
  const v = document.querySelector('[data-testid=video]');
  const t0 = performance.now();
  const hls = window.__player = new Hls();
  const first = %s.then(() => performance.now() - t0);
  hls.loadSource(%r);
  hls.attachMedia(v);
  v.play();
  return await first;
})()"""


class Viewer:
    """The demo account's first profile over gRPC: sessions for the bare players."""

    def __init__(self, platform: Platform) -> None:
        email, password = platform.demo_sign_in()
        with grpc.insecure_channel(platform.address("accounts")) as channel:
            stub = accounts_pb2_grpc.AccountServiceStub(channel)
            signed = stub.SignIn(accounts_pb2.SignInRequest(email=email, password=password), timeout=10)
            md = (("authorization", f"Bearer {signed.tokens.access_token}"),)
            profiles = stub.ListProfiles(accounts_pb2.ListProfilesRequest(parent=signed.account.name), metadata=md)
            self.profile = profiles.profiles[0].name
            selected = stub.SelectProfile(
                accounts_pb2.SelectProfileRequest(profile=self.profile, refresh_token=signed.tokens.refresh_token),
                metadata=md,
            )
        self.metadata = (("authorization", f"Bearer {selected.tokens.access_token}"),)
        self.channel = grpc.insecure_channel(platform.address("playback"))
        self.stub = playback_pb2_grpc.PlaybackServiceStub(self.channel)

    def start(self, title: str) -> playback_pb2.PlaybackSession:
        client = playback_pb2.ClientInfo(region="US", max_height=720)
        request = playback_pb2.StartPlaybackRequest(title=title, profile=self.profile, client=client)
        return self.stub.StartPlayback(request, metadata=self.metadata, timeout=10).session

    def stop(self, session: playback_pb2.PlaybackSession) -> None:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        request = playback_pb2.StopPlaybackRequest(
            session=session.name, position=duration_pb2.Duration(), event_time=now
        )
        self.stub.StopPlayback(request, metadata=self.metadata, timeout=10)


def app_start(page: Browser, platform: Platform, title_id: str) -> float:
    """One play in the web player: the title page, a click on Play, the first frame (the app measures it)."""
    page.goto(f"{platform.url}/title/{title_id}")
    page.click("[data-testid=play-button]:not([disabled])")
    page.wait_for_function("document.querySelector('[data-testid=player]')?.dataset.startupMs > 0", timeout=20_000)
    startup = float(page.player()["startupMs"])
    page.goto("about:blank")  # the page going away ends the session (StopPlayback on pagehide)
    return startup


def bare_page(page: Browser, platform: Platform) -> None:
    page.goto(platform.url + BARE_PATH)
    page.set_content(BARE_PAGE)


def bare_start(page: Browser, platform: Platform, viewer: Viewer, title: str, player: str) -> float:
    """One play in a bare page: Shaka Player on the DASH manifest or hls.js on the HLS one, load to first frame."""
    session = viewer.start(title)
    try:
        bare_page(page, platform)
        if player == "shaka":
            page.add_script(SHAKA)
            return float(page.evaluate(SHAKA_LOAD % (FIRST_FRAME, session.manifest_urls.dash_uri)))
        page.add_script(HLS_JS)
        return float(page.evaluate(HLS_LOAD % (FIRST_FRAME, session.manifest_urls.hls_uri)))
    finally:
        page.evaluate("window.__player?.destroy?.()")
        viewer.stop(session)


def quantiles(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[98], max(samples)


def start_times(page: Browser, platform: Platform, viewer: Viewer, titles: list[catalog_pb2.Title]) -> None:
    plays = len(titles) - 1
    ids = [t.name.split("/")[1] for t in titles]
    app_start(page, platform, ids[-1])  # warm-up: the browser caches the app, the edges the first segments
    results: dict[str, list[float]] = {"web player (Shaka, DASH)": [], "bare Shaka (DASH)": [], "bare hls.js (HLS)": []}
    for title_id, title in zip(ids[:plays], titles, strict=False):
        results["web player (Shaka, DASH)"].append(app_start(page, platform, title_id))
        results["bare Shaka (DASH)"].append(bare_start(page, platform, viewer, title.name, "shaka"))
        results["bare hls.js (HLS)"].append(bare_start(page, platform, viewer, title.name, "hls"))
    page.goto("about:blank")
    print(f"\nVideo start, play request to first frame, {plays} plays each (headless Chromium, loopback edges):")
    print(f"  {'player':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   measured from")
    for name, samples in results.items():
        p50, p99, top = quantiles(samples)
        since = "the click on Play (StartPlayback included)" if name.startswith("web") else "the load call"
        print(f"  {name:<34} {p50:8.0f} {p99:8.0f} {top:8.0f}   {since}")
    p50, p99, _ = quantiles(results["web player (Shaka, DASH)"])
    verdict = "met" if p50 < 500 and p99 < 1000 else "NOT met"
    print(f"  target p50 < 500 ms, p99 < 1,000 ms: {verdict} ({p50:.0f} / {p99:.0f} ms)")


def run_schedule(page: Browser, platform: Platform, content_seconds: float) -> None:
    """Applies SCHEDULE from now (the first frame) until the video ends; leaves the edges unlimited."""
    started = time.monotonic()
    steps = list(SCHEDULE)
    deadline = started + content_seconds * 1.5 + 30
    try:
        while time.monotonic() < deadline:
            elapsed = time.monotonic() - started
            while steps and steps[0][0] <= elapsed:
                rate = steps.pop(0)[1]
                for edge in platform.edges.values():
                    edge.set_rate_limit(rate)
            if page.evaluate("document.querySelector('[data-testid=video]').ended"):
                return
            time.sleep(0.5)
        raise RuntimeError("the video did not reach its end")
    finally:
        for edge in platform.edges.values():
            edge.set_rate_limit(0)


def rebuffering(
    page: Browser, platform: Platform, viewer: Viewer, titles: list[catalog_pb2.Title], content_seconds: float
) -> None:
    title_app, title_hls = titles
    rows: list[tuple[str, dict[str, Any], str]] = []

    # the web player
    page.goto(f"{platform.url}/title/{title_app.name.split('/')[1]}")
    page.click("[data-testid=play-button]:not([disabled])")
    page.wait_for_function("document.querySelector('[data-testid=player]')?.dataset.startupMs > 0", timeout=20_000)
    page.evaluate(QOE_MONITOR)
    run_schedule(page, platform, content_seconds)
    own = page.player()
    app_qoe = f"own QoE: {own['stalls']} stalls, {int(own['stallMs']) / 1000:.2f} s; {own['switches']} switches"
    rows.append(("web player (Shaka, DASH)", dict(page.evaluate("({...window.__qoe})")), app_qoe))
    page.goto("about:blank")

    # hls.js on the same schedule
    session = viewer.start(title_hls.name)
    try:
        bare_page(page, platform)
        page.add_script(HLS_JS)
        page.evaluate(HLS_LOAD % (FIRST_FRAME, session.manifest_urls.hls_uri))
        page.evaluate(QOE_MONITOR)
        run_schedule(page, platform, content_seconds)
        levels = page.evaluate("window.__player.levels.length")
        rows.append(("bare hls.js (HLS)", dict(page.evaluate("({...window.__qoe})")), f"{levels} levels"))
    finally:
        page.evaluate("window.__player?.destroy?.()")
        viewer.stop(session)
    page.goto("about:blank")

    plan = ", ".join(f"{t} s: {'none' if r == 0 else f'{r * 8 // 1000} kbit/s'}" for t, r in SCHEDULE)
    print(
        f"\nRebuffering over a {content_seconds:.0f} s title, per-connection limit at both edges from the first frame:"
    )
    print(f"  schedule: {plan}")
    print(f"  {'player':<34} {'stalls':>6} {'stalled s':>9} {'played s':>9} {'ratio':>8}   notes")
    for name, qoe, note in rows:
        stalled, played = qoe["stallMs"] / 1000, qoe["playMs"] / 1000
        ratio = stalled / (stalled + played) if stalled + played else 0.0
        print(f"  {name:<34} {qoe['stalls']:>6} {stalled:9.2f} {played:9.1f} {ratio:8.3%}   {note}")
    qoe = rows[0][1]
    ratio = qoe["stallMs"] / max(1.0, qoe["stallMs"] + qoe["playMs"])
    print(f"  target rebuffer ratio < 0.1%: {'met' if ratio < 0.001 else 'NOT met'} ({ratio:.3%})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--plays", type=int, default=30, help="plays per player for the start time (at least 30)")
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the played title")
    parser.add_argument("--no-rebuffer", action="store_true", help="only measure the start time")
    args = parser.parse_args()
    missing = missing_requirements()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="marquee-bench-video-") as tmp:
        env = {"MARQUEE_SERVICES__ENCODER__DEMO__SYNTHETIC_SECONDS": str(args.seconds)}
        print(f"starting the platform and encoding a {args.seconds:.0f} s demo title...", flush=True)
        platform = start_platform(Path(tmp), env)
        page = Browser()
        try:
            viewer = Viewer(platform)
            page.new_page()
            sign_in(page, platform, "Alex")
            # a title of its own for every play (each starts at 0), one to warm up, two for the rebuffer runs
            titles = platform.titles_playing(count=args.plays + 3)
            start_times(page, platform, viewer, titles[: args.plays + 1])
            if not args.no_rebuffer:
                rebuffering(page, platform, viewer, titles[-2:], args.seconds)
        finally:
            page.close()
            platform.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
