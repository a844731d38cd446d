"""Content steering manifests over HTTP (aiohttp), for players to reload every TTL.

    GET /steering/hls/{session}?_HLS_pathway="edge-a"&_HLS_throughput=5000000
    GET /steering/dash/{session}?_DASH_pathway="edge-a,edge-b"&_DASH_throughput=5000000,
    GET /healthz

200 with the JSON manifest; 400 bad parameters; 404 unknown session; 410 ended session; 429 with Retry-After
when over the configured request rate; 503 when no pathway can serve the session."""

from __future__ import annotations

import json
import math
import socket
import time

from aiohttp import web

from services.steering.config import HttpConfig
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


class TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


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


def build_app(steering: Steering, config: HttpConfig, public_url: str) -> web.Application:
    bucket = TokenBucket(config.max_requests_per_second)

    def reload_uri(kind: str, session_id: str) -> str:
        return f"{public_url}/steering/{kind}/{session_id}"

    async def manifest(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        session_id = request.match_info["session"]
        if not bucket.take():
            return _error(429, "steering is over its request rate; retry later", **{"Retry-After": "1"})
        if len(request.query_string) > MAX_QUERY_CHARS:
            return _error(400, f"query longer than {MAX_QUERY_CHARS} characters")
        protocol = "HLS" if kind == "hls" else "DASH"
        try:
            pairs = reported(request, protocol)
            current, throughput = pairs[-1] if pairs else ("", None)
            for pathway, value in pairs[:-1]:
                # earlier pathways of a DASH report: a poor measurement still counts against that pathway
                if value is not None and value < steering.config.min_throughput_bps:
                    steering.steer(session_id, current_pathway=pathway, throughput_bps=value)
            decision = steering.steer(
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
        uri = reload_uri(kind, session_id)
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


class SteeringHttp:
    """The running HTTP endpoint."""

    def __init__(self, runner: web.AppRunner, port: int, public_url: str) -> None:
        self.runner, self.port, self.public_url = runner, port, public_url

    @classmethod
    async def start(cls, steering: Steering, config: HttpConfig) -> SteeringHttp:
        # RELOAD-URI needs the port, which is only known once bound when 0 is configured: bind first
        sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        port = int(sock.getsockname()[1])
        public = (config.public_url or f"http://{config.host}:{port}").rstrip("/")
        runner = web.AppRunner(build_app(steering, config, public), access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        return cls(runner, port, public)

    def reload_uri(self, kind: str, session_id: str) -> str:
        return f"{self.public_url}/steering/{kind}/{session_id}"

    async def stop(self) -> None:
        await self.runner.cleanup()
