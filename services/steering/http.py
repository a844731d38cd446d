"""Content steering manifests over HTTP (aiohttp), for players to reload every TTL.

    GET /steering/hls/{session}?token=...&_HLS_pathway="edge-a"&_HLS_throughput=5000000
    GET /steering/dash/{session}?token=...&_DASH_pathway="edge-a,edge-b"&_DASH_throughput=5000000,
    GET /healthz

Every manifest request carries the session's signed URL token (403 when missing, tampered or another session's;
410 once expired), and the RELOAD-URI it answers with carries the same token. 200 with the JSON manifest; 400
bad parameters; 404 unknown session; 410 ended session; 429 with Retry-After when over the configured request
rate; 503 with Retry-After when no pathway can serve the session, or the session directory (Redis) is unreachable.

Any replica answers for any live session: one it does not hold is looked up in the session directory first
(services/steering/sessions.py)."""

from __future__ import annotations

import json
import math
from urllib.parse import quote

from aiohttp import web

from marquee.native import TokenKeyring
from services.common import urltokens
from services.common.errors import Unavailable
from services.common.http import HttpSite, bind_site
from services.common.ratelimit import Rate, RateLimiter
from services.steering.config import HttpConfig
from services.steering.sessions import SharedSessions
from services.steering.steerer import (
    BadInput,
    NoPathway,
    Overloaded,
    SessionEnded,
    Steering,
    UnknownSession,
)

MAX_QUERY_CHARS = 2048
MAX_REPORTED_PATHWAYS = 16


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def reported(request: web.Request, protocol: str) -> list[tuple[str, float | None]]:
    """The (pathway, throughput bits/s or None) pairs a player reported (HLS: one; DASH: a list)."""
    pathways = [p for p in _unquote(request.query.get(f"_{protocol}_pathway", "")).split(",") if p]
    raw = _unquote(request.query.get(f"_{protocol}_throughput", ""))
    values = raw.split(",") if raw else []
    if len(pathways) > MAX_REPORTED_PATHWAYS or len(values) > MAX_REPORTED_PATHWAYS:
        raise BadInput(f"_{protocol}_pathway", f"at most {MAX_REPORTED_PATHWAYS} reported pathways")
    numbers: list[float | None] = []
    for text in (v.strip() for v in values):
        if not text:
            numbers.append(None)
            continue
        try:
            value = float(text)
        except ValueError:
            raise BadInput(f"_{protocol}_throughput", f"_{protocol}_throughput {text[:32]!r} is not a number") from None
        if not math.isfinite(value):
            raise BadInput(f"_{protocol}_throughput", f"_{protocol}_throughput must be finite")
        numbers.append(value)
    # values pair with pathways by position; a throughput without a pathway still counts as a measurement
    return [
        (pathways[i] if i < len(pathways) else "", numbers[i] if i < len(numbers) else None)
        for i in range(max(len(pathways), len(numbers)))
    ]


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store", **headers})


def build_app(
    sessions: SharedSessions, config: HttpConfig, limiter: RateLimiter, keys: TokenKeyring, public_url: str
) -> web.Application:
    steering: Steering = sessions.steering
    rate = Rate(limit=config.max_requests_per_second, period=1.0)

    def reload_uri(kind: str, session_id: str, token: str) -> str:
        return f"{public_url}/steering/{kind}/{session_id}?{urltokens.TOKEN_PARAM}={quote(token, safe='')}"

    async def manifest(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        session_id = request.match_info["session"]
        admitted = await limiter.hit("steering-http", rate)
        if not admitted.allowed:
            retry = str(max(1, math.ceil(admitted.retry_after)))
            return _error(429, "steering is over its request rate; retry later", **{"Retry-After": retry})
        if len(request.query_string) > MAX_QUERY_CHARS:
            return _error(400, f"query longer than {MAX_QUERY_CHARS} characters")
        token = request.query.get(urltokens.TOKEN_PARAM, "")
        refused = urltokens.refusal(keys, token, request.path, session_id)
        if refused is not None:
            return _error(*refused)
        protocol = "HLS" if kind == "hls" else "DASH"
        try:
            pairs = reported(request, protocol)
            current, throughput = pairs[-1] if pairs else ("", None)
            for pathway, value in pairs[:-1]:
                # earlier pathways of a DASH report: a poor measurement still counts against that pathway
                if value is not None and value < steering.config.min_throughput_bps:
                    await sessions.steer(session_id, current_pathway=pathway, throughput_bps=value)
            decision = await sessions.steer(
                session_id,
                current_pathway=current,
                throughput_bps=throughput,
                throughput_field=f"_{protocol}_throughput",
            )
        except BadInput as exc:
            return _error(400, str(exc))
        except UnknownSession as exc:
            return _error(404, str(exc))
        except SessionEnded as exc:
            return _error(410, str(exc))
        except Overloaded as exc:
            return _error(429, str(exc), **{"Retry-After": str(steering.config.ttl_seconds)})
        except NoPathway as exc:
            return _error(503, str(exc), **{"Retry-After": str(steering.config.ttl_seconds)})
        except Unavailable as exc:
            return _error(503, str(exc), **{"Retry-After": str(math.ceil(exc.retry_after or 1))})
        uri = reload_uri(kind, session_id, token)
        doc = steering.hls_manifest(decision, uri) if kind == "hls" else steering.dash_manifest(decision, uri)
        return web.Response(
            text=json.dumps(doc),
            content_type="application/json",
            headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"},
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(client_max_size=1024)
    app.router.add_get(r"/steering/{kind:hls|dash}/{session}", manifest)
    app.router.add_get("/healthz", healthz)
    return app


def bind_http(sessions: SharedSessions, config: HttpConfig, limiter: RateLimiter, keys: TokenKeyring) -> HttpSite:
    """The steering manifests' endpoint, bound (it serves once started); RELOAD-URIs use its public URL."""
    return bind_site(
        lambda public: build_app(sessions, config, limiter, keys, public), config.host, config.port, config.public_url
    )


def reload_uri(site: HttpSite, kind: str, session_id: str) -> str:
    """The session's steering manifest URL, without its token (playback adds the session's)."""
    return f"{site.public_url}/steering/{kind}/{session_id}"
