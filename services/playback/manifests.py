"""Per-session manifests over HTTP (aiohttp), rendered by the Rust renderer for every request:

    GET /sessions/{session}/master.m3u8?token=...   HLS multivariant playlist with EXT-X-CONTENT-STEERING
    GET /sessions/{session}/manifest.mpd?token=...  DASH MPD with ContentSteering

Every URI inside carries the session's token (which the edges verify), the session's pathways come from
steering, and renditions above the plan's (and the device's) height are left out. 403 for a missing, bad or
foreign token, 410 for an expired token or an ended session, 404 for an unknown session."""

from __future__ import annotations

from aiohttp import web

from marquee.native import InvalidArgumentError, TokenError, TokenExpiredError, TokenKeyring
from services.common.http import HttpSite, start_site
from services.common.ids import now_micros
from services.common.store.port import Store
from services.playback.config import ManifestHttpConfig
from services.playback.media import MediaLibrary
from services.playback.schema import SESSIONS

HEADERS = {"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"{status}: {message}\n", headers=HEADERS)


def build_app(store: Store, media: MediaLibrary, keys: TokenKeyring) -> web.Application:
    async def manifest(request: web.Request) -> web.Response:
        session_id, kind = request.match_info["session"], request.match_info["file"]
        token = request.query.get("token", "")
        if not token:
            return _error(403, "a signed token is required")
        try:
            keys.verify(token, request.path, session_id=session_id)
        except TokenExpiredError:
            return _error(410, "the token has expired")
        except (TokenError, InvalidArgumentError) as exc:
            return _error(403, str(exc))
        row = await store.get(SESSIONS, {"session_id": session_id})
        if row is None:
            return _error(404, "no such session")
        if row["ended"] or row["expire_time"] <= now_micros():
            return _error(410, "the session has ended")
        presentation = (await media.get(row["media_id"])).presentation
        pathways = [(p["id"], p["base_uri"]) for p in row["pathways"]]
        default = pathways[0][0] if pathways else None
        hls_steering = row["steering_uri"]
        if kind == "master.m3u8":
            text = presentation.hls_multivariant(
                token=token,
                pathways=pathways,
                steering=(hls_steering, default) if hls_steering and default else None,
                max_height=row["max_height"] or None,
            )
            content_type = "application/vnd.apple.mpegurl"
        else:
            dash_steering = hls_steering.replace("/steering/hls/", "/steering/dash/")
            text = presentation.dash_mpd(
                token=token,
                pathways=pathways,
                steering=(dash_steering, default) if dash_steering and default else None,
                max_height=row["max_height"] or None,
            )
            content_type = "application/dash+xml"
        return web.Response(text=text, content_type=content_type, headers=HEADERS)

    app = web.Application(client_max_size=1024)
    app.router.add_get(r"/sessions/{session:[0-9a-f]{24}}/{file:master\.m3u8|manifest\.mpd}", manifest)
    return app


async def start_manifests(
    store: Store, media: MediaLibrary, keys: TokenKeyring, config: ManifestHttpConfig
) -> HttpSite:
    return await start_site(lambda _: build_app(store, media, keys), config.host, config.port, config.public_url)
