"""``create_server``: the gateway's HTTP endpoint (aiohttp) with its routes.

    POST /{package.Service}/{Method}   gRPC-web (application/grpc-web[+proto], application/grpc-web-text[+proto])
    OPTIONS *                          CORS preflight
    GET  /healthz                      "ok"
    GET  /*                            the web player (static files, single-page-app fallback)

Any other verb gets 405.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from services.common.deps import Dependencies
from services.common.http import HttpSite, bind_site
from services.common.service import Service
from services.gateway.config import GatewayConfig
from services.gateway.cors import Cors
from services.gateway.proxy import GrpcWebProxy
from services.gateway.routes import Routes, discover, marquee_services
from services.gateway.static import StaticFiles

# The default static directory: web/dist beside the top-level packages, that is the checkout's build in a
# development tree, and the copy the wheel carries (site-packages/web/dist) in an installed Marquee (the image).
log = logging.getLogger("marquee.gateway")

DEFAULT_WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


class GatewayService(Service):
    """The gateway as a service: its HTTP endpoint stops with the gateway's own grace (see :meth:`Gateway.stop`)."""

    gateway: Gateway


@dataclass
class Gateway:
    """A running gateway: its HTTP site, its proxy and its channels to the backends."""

    site: HttpSite
    routes: Routes
    proxy: GrpcWebProxy
    grace_period: float
    _stopping: asyncio.Future[None] | None = None

    @property
    def port(self) -> int:
        return self.site.port

    @property
    def public_url(self) -> str:
        return self.site.public_url

    async def stop(self) -> None:
        """Stop listening, give calls in flight ``grace_period`` seconds, then cancel what is left (open server
        streams end with UNAVAILABLE in their trailers) and close the channels. Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        stopping = asyncio.ensure_future(self.site.stop())
        done, _ = await asyncio.wait({stopping}, timeout=self.grace_period)
        if not done:
            self.proxy.shutting_down = True
            await self.routes.close()
        await stopping
        await self.routes.close()


def build_app(config: GatewayConfig, proxy: GrpcWebProxy) -> web.Application:
    cors = proxy.cors
    static = StaticFiles(config.static_dir or DEFAULT_WEB_DIST, config.immutable_paths)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})

    app = web.Application(client_max_size=config.limits.max_request_bytes)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("POST", "/{path:.*}", proxy.handle)
    app.router.add_route("OPTIONS", "/{path:.*}", cors.preflight)
    app.router.add_get("/{path:.*}", static.handle)
    return app


async def create_server(config: GatewayConfig, deps: Dependencies) -> GatewayService:
    """Build the gateway (not started) in front of its routes: the configured ``routes`` (service full name ->
    backend address), or else the ``marquee.v1`` services found on the backends at ``deps.addresses``."""
    known = marquee_services()  # also loads the descriptors the routes need
    routes = dict(config.routes) or await discover(deps.addresses.values(), known)
    if routes:
        log.info("gateway routes", extra={"routes": routes})
    else:
        log.warning("the gateway routes no service: no backend address is known (addresses, or --only)")
    limits = config.limits
    table = Routes(
        routes,
        channel_options=[
            ("grpc.max_send_message_length", limits.max_message_bytes),
            ("grpc.max_receive_message_length", limits.max_response_message_bytes),
        ],
    )
    proxy = GrpcWebProxy(table, limits, deps.rate_limiter, Cors(config.cors), trusted_proxies=config.trusted_proxies)
    try:
        site = bind_site(
            lambda _: build_app(config, proxy),
            config.http.host,
            config.http.port,
            config.http.public_url,
            header_read_timeout=config.http.header_read_timeout,
        )
    except BaseException:
        await table.close()
        raise
    gateway = Gateway(site, table, proxy, config.grace_period)
    service = GatewayService("gateway", ports={"http": site.port}, on_start=[site.start], cleanups=[gateway.stop])
    service.gateway = gateway
    return service
