"""HTTP endpoints next to a service's gRPC server (aiohttp): bound first, so an endpoint configured on port 0 knows
its address (and the URLs it hands out) before it serves."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web


@dataclass
class HttpSite:
    runner: web.AppRunner
    port: int
    public_url: str  # no trailing slash

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_site(
    build_app: Callable[[str], web.Application], host: str, port: int, public_url: str | None = None
) -> HttpSite:
    """Binds ``host:port`` (0: a free port), builds the app with its public URL (``public_url`` or
    ``http://{host}:{port}``) and serves it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = int(sock.getsockname()[1])
    public = (public_url or f"http://{host}:{bound}").rstrip("/")
    runner = web.AppRunner(build_app(public), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return HttpSite(runner, bound, public)
