"""Per-session manifests over HTTP (aiohttp), rendered by the Rust renderer for every request:

    GET /sessions/{session}/master.m3u8?token=...   HLS multivariant playlist with EXT-X-CONTENT-STEERING
    GET /sessions/{session}/manifest.mpd?token=...  DASH MPD with ContentSteering (and, for a protected title,
                                                    the session's ClearKey licence URL as dashif:Laurl)
    GET /sessions/{session}/master-aes128.m3u8?token=...
                                                    a protected title's HLS AES-128 variant (players without
                                                    EME; its media playlists name the session's raw keys)
    GET /downloads/{account}/{profile}/{download}/master.m3u8|manifest.mpd?token=...
                                                    an offline download's manifests (services/playback/downloads.py):
                                                    its pathways, no steering, its rendition cap; while it is active
    POST /sessions/{session}/license                the session's ClearKey licences (services/playback/license.py)

Every URI inside carries the request's token (which the edges and steering verify: its content steering
SERVER-URI too), the session's pathways come from steering, and renditions above the plan's (and the device's)
height are left out. 403 for a missing, bad or foreign token (or a client outside the title's licensed regions,
by its address), 410 for an expired token or an ended session, 404 for an unknown session."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from marquee.native import TokenKeyring
from services.common import urltokens
from services.common.geo import Geo
from services.common.http import HttpSite, bind_site
from services.common.ids import now_micros
from services.common.store.port import Row, Store
from services.playback.config import ManifestHttpConfig
from services.playback.license import ClearKeyEndpoint
from services.playback.media import MediaLibrary
from services.playback.schema import DOWNLOADS, SESSIONS

HEADERS = {"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}
SESSION_ID = "[0-9a-f]{24}"
NAME_ID = "[A-Za-z0-9_-]{1,64}"


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"{status}: {message}\n", headers=HEADERS)


def build_app(
    store: Store,
    media: MediaLibrary,
    keys: TokenKeyring,
    geo: Geo,
    public_url: str = "",
    licenses: ClearKeyEndpoint | None = None,
) -> web.Application:
    """The manifests (and, with ``licenses``, the ClearKey licence endpoint) served at ``public_url``."""

    def refusal(request: web.Request, bound_to: str) -> web.Response | None:
        """The request's refusal (403; 410 for an expired token), or None when its token grants its path, is bound
        to ``bound_to`` (the session's or the download's id) and, when bound to licensed regions, names the
        client's."""
        _, region = geo.http_client(request)
        refused = urltokens.refusal(keys, request.query.get(urltokens.TOKEN_PARAM, ""), request.path, bound_to, region)
        return _error(*refused) if refused is not None else None

    async def render(
        request: web.Request, row: Row, steering_uri: str = "", license_url: str | None = None
    ) -> web.Response:
        """The manifest the request asks for (``file``) of a live session's or download's ``row``: its media, its
        pathways and its rendition cap, every URI carrying the request's token; steered by ``steering_uri`` (the
        HLS form; none for a download) and, in DASH, naming ``license_url``."""
        token = request.query.get(urltokens.TOKEN_PARAM, "")
        presentation = (await media.get(row["media_id"])).presentation
        pathways = [(p["id"], p["base_uri"]) for p in row["pathways"]]
        default = pathways[0][0] if pathways else None
        signed = f"?{urltokens.TOKEN_PARAM}={quote(token, safe='')}"
        hls_steering = f"{steering_uri}{signed}" if steering_uri else ""
        file = request.match_info["file"]
        if file.endswith(".m3u8"):
            aes128 = file == "master-aes128.m3u8"
            if aes128 and not presentation.hls_aes128:
                return _error(404, "this title has no HLS AES-128 variant")
            text = presentation.hls_multivariant(
                token=token,
                pathways=pathways,
                steering=(hls_steering, default) if hls_steering and default else None,
                max_height=row["max_height"] or None,
                aes128=aes128,
            )
            content_type = "application/vnd.apple.mpegurl"
        else:
            dash_steering = hls_steering.replace("/steering/hls/", "/steering/dash/")
            text = presentation.dash_mpd(
                token=token,
                pathways=pathways,
                steering=(dash_steering, default) if dash_steering and default else None,
                max_height=row["max_height"] or None,
                license_url=license_url,
            )
            content_type = "application/dash+xml"
        return web.Response(text=text, content_type=content_type, headers=HEADERS)

    async def manifest(request: web.Request) -> web.Response:
        session_id = request.match_info["session"]
        refused = refusal(request, session_id)
        if refused is not None:
            return refused
        row = await store.get(SESSIONS, {"session_id": session_id})
        if row is None:
            return _error(404, "no such session")
        if row["ended"] or row["expire_time"] <= now_micros():
            return _error(410, "the session has ended")
        license_url = f"{public_url}/sessions/{session_id}/license" if licenses is not None else None
        return await render(request, row, row["steering_uri"], license_url)

    async def download_manifest(request: web.Request) -> web.Response:
        m = request.match_info
        refused = refusal(request, m["download"])
        if refused is not None:
            return refused
        key = {"account_id": m["account"], "profile_id": m["profile"], "download_id": m["download"]}
        row = await store.get(DOWNLOADS, key)
        if row is None:
            return _error(404, "no such download")
        if row["state"] != "active" or row["expire_time"] <= now_micros():
            return _error(410, "the download was revoked or its licence expired")
        return await render(request, row)

    app = web.Application(client_max_size=1024)
    app.router.add_get(
        rf"/sessions/{{session:{SESSION_ID}}}/{{file:master\.m3u8|master-aes128\.m3u8|manifest\.mpd}}", manifest
    )
    app.router.add_get(
        rf"/downloads/{{account:{NAME_ID}}}/{{profile:{NAME_ID}}}/{{download:{SESSION_ID}}}"
        rf"/{{file:master\.m3u8|manifest\.mpd}}",
        download_manifest,
    )
    if licenses is not None:
        licenses.add_routes(app, SESSION_ID)
    return app


def bind_manifests(
    store: Store,
    media: MediaLibrary,
    keys: TokenKeyring,
    config: ManifestHttpConfig,
    geo: Geo,
    licenses: ClearKeyEndpoint | None = None,
) -> HttpSite:
    """The per-session manifests' endpoint (with the sessions' licence endpoint), bound (it serves once started)."""
    return bind_site(
        lambda public: build_app(store, media, keys, geo, public, licenses), config.host, config.port, config.public_url
    )
