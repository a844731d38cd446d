"""CORS for browsers calling the gateway from another origin (a player served elsewhere, Vite's dev server).

Access tokens travel in the ``authorization`` header, never in cookies, so responses never allow credentials.
The gateway's own origin (the player it serves) is always allowed; other origins per ``[services.gateway.cors]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from services.gateway.config import CorsConfig

ALWAYS_EXPOSED = ("grpc-status", "grpc-message", "grpc-status-details-bin", "x-request-id")
ALLOWED_METHODS = "POST, OPTIONS"


class Cors:
    def __init__(self, config: CorsConfig) -> None:
        self._any = "*" in config.allowed_origins
        self._origins = frozenset(o.rstrip("/") for o in config.allowed_origins if o != "*")
        self._allowed_headers = ", ".join(h.lower() for h in config.allowed_headers)
        self._max_age = str(config.max_age)

    def allow_origin(self, request: web.Request) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for this request, or None when its origin is not allowed
        (or it has no Origin header: not a cross-origin browser request)."""
        origin = request.headers.get("Origin")
        if not origin:
            return None
        if self._any:
            return "*"
        if origin in self._origins or urlsplit(origin).netloc == request.host:
            return origin
        return None

    def forbidden(self, request: web.Request) -> bool:
        """A browser request from an origin that is not allowed (refused before it reaches a backend)."""
        return "Origin" in request.headers and self.allow_origin(request) is None

    def headers(self, request: web.Request, exposed: Iterable[str] = ()) -> dict[str, str]:
        origin = self.allow_origin(request)
        if origin is None:
            return {}
        out = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": ", ".join(dict.fromkeys((*ALWAYS_EXPOSED, *exposed))),
        }
        if origin != "*":
            out["Vary"] = "Origin"
        return out

    async def preflight(self, request: web.Request) -> web.Response:
        origin = self.allow_origin(request)
        if origin is None:
            return web.Response(status=403, text="origin not allowed\n", headers={"Vary": "Origin"})
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": self._allowed_headers,
            "Access-Control-Max-Age": self._max_age,
        }
        if origin != "*":
            headers["Vary"] = "Origin"
        return web.Response(status=204, headers=headers)
