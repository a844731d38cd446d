"""Video start time with DRM next to without, in headless Chromium: Shaka Player on a protected title (Common
Encryption 'cenc', ClearKey licences from the licence service over HTTP, the viewer's bearer token) and on the same
title in the clear, measured in the same run on the same stack, alternating. Target: the licence round trip adds at
most 100 ms to the p50 start time (play request to first frame, requestVideoFrameCallback).

The stack is the tests' playback stack in this process (catalog, steering, the encoder holding the master key and
the title's keys, playback with the licence endpoint, an edge), on SQLite; the title is encoded by the real
pipeline (a synthetic 480p master) and encrypted with the keys the encoder's key store made. Each play is a new
playback session (StartPlayback over gRPC, StopPlayback after) and a new page.
Run: ./dev bench drm_start [--plays 15]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from google.protobuf import duration_pb2, timestamp_pb2
from pydantic import SecretStr

from marquee.v1 import catalog_pb2, encoding_pb2, steering_pb2
from marquee.v1 import playback_pb2 as pb
from services.common.config import ContentKeysConfig, ServerConfig
from services.common.ratelimit import Rate
from services.common.store.sqlite import SqliteStore
from services.common.topics import ENCODING_DONE
from services.encoder import schema as encoder_schema
from services.encoder.keys import ContentKeys, MasterKeys, as_encryptor_keys
from services.encoder.media import protect
from services.encoder.media.pipeline import encode_title
from services.playback.config import LicenseConfig, ManifestHttpConfig, PlaybackConfig
from tests.e2e.browser import PLAYERS, Browser, missing_requirements, static_site
from tests.edge.conftest import TITLE
from tests.encoder.conftest import make_source
from tests.playback.conftest import Playback, add_title, playback_stack
from tests.protect.titles import protect_title

CLEAR = f"{TITLE}-clear"
MASTER = ContentKeysConfig(keys={"m1": SecretStr("drm-bench-master-secret-0123456789abcdef")}, wrapping_kid="m1")
SHAKA = PLAYERS / "node_modules" / "shaka-player" / "dist" / "shaka-player.compiled.js"
PAGE = """<!doctype html><html><body style="margin:0">
<video id="v" width="640" height="360" muted playsinline></video>
<script src="shaka-player.compiled.js"></script>
<script>
  shaka.polyfill.installAll();
  window.start = async (config) => {
    const v = document.getElementById("v");
    const t0 = performance.now();
    const player = new shaka.Player();
    await player.attach(v);
    if (config.license) {
      player.configure({ drm: { servers: { "org.w3.clearkey": config.license } } });
      const LICENSE = shaka.net.NetworkingEngine.RequestType.LICENSE;
      player.getNetworkingEngine().registerRequestFilter((type, request) => {
        if (type === LICENSE) request.headers["Authorization"] = `Bearer ${config.token}`;
      });
    }
    const first = new Promise((r) => v.requestVideoFrameCallback(() => r(performance.now() - t0)));
    await player.load(config.manifest);
    v.play();
    return await first;
  };
</script></body></html>"""


def prepare(root: Path) -> Path:
    """The title encoded into an origin, in the clear (CLEAR) and protected (TITLE) with the encoder's keys."""
    origin = root / "origin"
    source = make_source(root / "master.mp4", width=854, height=480, seconds=20)
    encode_title(source, CLEAR, origin, preset="veryfast")
    return origin


async def protect_into(store: SqliteStore, origin: Path) -> None:
    await store.migrate(encoder_schema.SCHEMA)
    keys = await ContentKeys(store, MasterKeys(MASTER)).get_or_create(TITLE)
    title = protect_title(origin / CLEAR, origin / TITLE, "cenc", as_encryptor_keys(keys))
    doc = title.description
    kinds = {r["id"]: kind for kind in ("video", "audio") for r in doc[kind]}
    doc["protection"] = protect.description("cenc", {r: (kinds[r], e) for r, e in title.encryptors.items()})
    (origin / TITLE / "media.json").write_text(json.dumps(doc))


async def play(p: Playback, browser: Browser, base: str, title: str, md: Any) -> float:
    request = pb.StartPlaybackRequest(title=f"titles/{title}", profile="accounts/a1/profiles/p1")
    session = (await p.stub.StartPlayback(request, metadata=md)).session
    token = dict(md)["authorization"].removeprefix("Bearer ")
    config = {"manifest": session.manifest_urls.dash_uri, "license": session.license_uri, "token": token}

    def run() -> float:
        browser.new_page()
        browser.goto(f"{base}/index.html")
        return float(browser.evaluate(f"window.start({json.dumps(config)})"))

    try:
        return await asyncio.to_thread(run)
    finally:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        stop = pb.StopPlaybackRequest(session=session.name, position=duration_pb2.Duration(), event_time=now)
        await p.stub.StopPlayback(stop, metadata=md)


async def licence_round_trips(p: Playback, md: Any, count: int) -> list[float]:
    """The licence exchange alone (HTTP POST, W3C ClearKey JSON), as a player makes it, in milliseconds."""
    keys = await ContentKeys(p.store, MasterKeys(MASTER)).get(TITLE)
    kid = keys["video"].kid
    body = json.dumps({"kids": [base64.urlsafe_b64encode(kid).rstrip(b"=").decode()]})
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile="accounts/a1/profiles/p1")
    session = (await p.stub.StartPlayback(request, metadata=md)).session
    headers = {"Authorization": dict(md)["authorization"]}
    loop = asyncio.get_running_loop()
    out = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            t0 = loop.time()
            async with http.post(session.license_uri, data=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                await r.read()
            out.append((loop.time() - t0) * 1000)
    return out


async def heartbeats(p: Playback) -> None:
    """The stack's edge heartbeats as an edge process does (steering forgets an edge that stops), every 2 s."""
    beat = steering_pb2.HeartbeatRequest(edge="edges/edge-a", healthy=True, capacity_bps=10**10)
    while True:
        await p.steering.Heartbeat(beat, metadata=p.admin)
        await asyncio.sleep(2)


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def main(plays: int) -> int:
    missing = missing_requirements()
    if missing or not SHAKA.exists():
        print(f"cannot run: {missing or f'{SHAKA} is missing'}")
        return 1
    root = Path(tempfile.mkdtemp(prefix="marquee-drm-bench-"))
    try:
        origin = prepare(root)
        store = SqliteStore(root / "marquee.db")
        await protect_into(store, origin)
        site = root / "site"
        site.mkdir()
        (site / "index.html").write_text(PAGE)
        shutil.copy(SHAKA, site / SHAKA.name)
        unlimited = Rate(limit=100_000, period=60)  # the bench measures latency, not the licence rate limits
        config = PlaybackConfig(
            server=ServerConfig(port=0, drain_delay=0, grace_period=1),
            http=ManifestHttpConfig(port=0),
            license=LicenseConfig(per_account=unlimited, per_address=unlimited),
        )
        browser = Browser()
        try:
            async with playback_stack(root, origin, config, store, content_keys=MASTER) as p:
                done = encoding_pb2.EncodingDoneEvent(title=f"titles/{CLEAR}", media_path=CLEAR)
                await p.bus.publish(ENCODING_DONE, done.SerializeToString())
                await add_title(p, CLEAR)
                get = catalog_pb2.GetTitleRequest(name=f"titles/{CLEAR}")
                for _ in range(600):  # the catalog follows encoding.done
                    if (await p.catalog.GetTitle(get, metadata=p.admin)).title.playable:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise RuntimeError(f"titles/{CLEAR} never became playable")
                md = p.caller("a1", "p1")
                beating = asyncio.create_task(heartbeats(p))
                with static_site(site) as base:
                    await play(p, browser, base, CLEAR, md)  # warm the browser's caches and the edge
                    clear, protected = [], []
                    for _ in range(plays):
                        clear.append(await play(p, browser, base, CLEAR, md))
                        protected.append(await play(p, browser, base, TITLE, md))
                round_trips = await licence_round_trips(p, md, 50)
                beating.cancel()
        finally:
            browser.close()
        await store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    c50, c99 = quantiles(clear)
    d50, d99 = quantiles(protected)
    l50, l99 = quantiles(round_trips)
    print(f"video start, play request to first frame, {plays} plays each (Shaka Player, DASH, headless Chromium)")
    print(f"  clear title            p50 {c50:7.1f} ms   p99 {c99:7.1f} ms")
    print(f"  protected (ClearKey)   p50 {d50:7.1f} ms   p99 {d99:7.1f} ms")
    print(f"  DRM adds               p50 {d50 - c50:+7.1f} ms (target <= 100 ms); ratio {d50 / c50:.2f}x")
    print(f"  licence round trip alone (HTTP POST, 50 requests): p50 {l50:.1f} ms, p99 {l99:.1f} ms")
    return 0 if d50 - c50 <= 100 else 2


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plays", type=int, default=15, help="plays of each title")
    sys.exit(asyncio.run(main(parser.parse_args().plays)))
