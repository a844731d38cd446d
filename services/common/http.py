"""HTTP endpoints next to a service's gRPC server (aiohttp): bound first, so an endpoint configured on port 0 knows
its address (and the URLs it hands out) before it serves.

Every site cuts a client that takes longer than ``header_read_timeout`` (10 s, as the edge's data plane) to send a
complete request head, counted from the connection's start or from its previous answer: slowloris clients that
trickle bytes cannot hold connections open. aiohttp's keep-alive timer is that clock (it runs while the connection
waits for a whole head, and partial bytes do not reset it), so an idle keep-alive connection closes after the same
time."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

HEADER_READ_TIMEOUT = 10.0


@dataclass
class HttpSite:
    """An endpoint bound to its port (so its URL is known) that serves once started."""

    runner: web.AppRunner
    port: int
    public_url: str  # no trailing slash
    sock: socket.socket
    started: bool = False

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def stop(self) -> None:
        """Idempotent; closes the socket of a site that never started."""
        if self.started:
            await self.runner.cleanup()
        self.sock.close()


def bind_site(
    build_app: Callable[[str], web.Application],
    host: str,
    port: int,
    public_url: str | None = None,
    *,
    header_read_timeout: float = HEADER_READ_TIMEOUT,
) -> HttpSite:
    """Binds ``host:port`` (0: a free port) and builds the app with its public URL (``public_url`` or
    ``http://{host}:{port}``); it serves from :meth:`HttpSite.start`."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound = int(sock.getsockname()[1])
    public = (public_url or f"http://{host}:{bound}").rstrip("/")
    runner = web.AppRunner(build_app(public), access_log=None, keepalive_timeout=header_read_timeout)
    return HttpSite(runner, bound, public, sock)


async def start_site(
    build_app: Callable[[str], web.Application],
    host: str,
    port: int,
    public_url: str | None = None,
    *,
    header_read_timeout: float = HEADER_READ_TIMEOUT,
) -> HttpSite:
    """:func:`bind_site`, then serve at once."""
    site = bind_site(build_app, host, port, public_url, header_read_timeout=header_read_timeout)
    await site.start()
    return site
