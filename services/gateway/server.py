"""``create_server``: the gateway's HTTP endpoint (aiohttp) with its routes.

    POST /{package.Service}/{Method}   gRPC-web (application/grpc-web[+proto], application/grpc-web-text[+proto])
    OPTIONS *                          CORS preflight
    GET  /healthz                      "ok"
    GET  /*                            the web player (static files, single-page-app fallback)

Any other verb gets 405.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from services.common.http import HttpSite, start_site
from services.common.ratelimit import RateLimiter
from services.gateway.config import GatewayConfig
from services.gateway.cors import Cors
from services.gateway.proxy import GrpcWebProxy
from services.gateway.routes import Routes
from services.gateway.static import StaticFiles

# web/dist of the checkout this package lives in (the default static directory)
CHECKOUT_WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


@dataclass
class Gateway:
    """A running gateway: its HTTP site and its channels to the backends."""

    site: HttpSite
    routes: Routes

    @property
    def port(self) -> int:
        return self.site.port

    @property
    def public_url(self) -> str:
        return self.site.public_url

    async def stop(self) -> None:
        await self.site.stop()
        await self.routes.close()


def build_app(config: GatewayConfig, routes: Routes, limiter: RateLimiter) -> web.Application:
    cors = Cors(config.cors)
    proxy = GrpcWebProxy(routes, config.limits, limiter, cors, trust_forwarded_for=config.trust_forwarded_for)
    static = StaticFiles(config.static_dir or CHECKOUT_WEB_DIST, config.immutable_paths)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})

    app = web.Application(client_max_size=config.limits.max_request_bytes)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("POST", "/{path:.*}", proxy.handle)
    app.router.add_route("OPTIONS", "/{path:.*}", cors.preflight)
    app.router.add_get("/{path:.*}", static.handle)
    return app


async def create_server(
    config: GatewayConfig, limiter: RateLimiter, routes: Mapping[str, str] | None = None
) -> tuple[Gateway, int]:
    """Start the gateway in front of ``routes`` (service full name -> backend address; default: the configured
    ``routes``). The service descriptors must be loaded (their ``_pb2`` modules imported)."""
    limits = config.limits
    table = Routes(
        routes if routes is not None else config.routes,
        channel_options=[
            ("grpc.max_send_message_length", limits.max_message_bytes),
            ("grpc.max_receive_message_length", limits.max_response_message_bytes),
        ],
    )
    try:
        site = await start_site(
            lambda _: build_app(config, table, limiter), config.http.host, config.http.port, config.http.public_url
        )
    except BaseException:
        await table.close()
        raise
    return Gateway(site, table), site.port
