"""The one shape every service has: ``create_server(config, deps) -> Service``.

A :class:`Service` is built, not running: its gRPC server and HTTP sites are bound (so its ports and URLs are
known) but serve nothing, and no background work has begun. :meth:`Service.start` serves and starts the
background tasks; :meth:`Service.stop` (idempotent, safe to call concurrently) stops the gRPC server gracefully
(health NOT_SERVING, drain, in-flight calls finish), cancels the background tasks, stops the HTTP sites and runs
the clean-ups in reverse order. ``marquee serve NAME`` runs one Service in a process; ``marquee up`` composes
them all in one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from services.common.http import HttpSite
from services.common.server import Server
from services.common.tasks import cancel_all

log = logging.getLogger("marquee.service")

Background = Callable[[], Coroutine[Any, Any, None]]
Cleanup = Callable[[], Any]  # sync or async


class Service:
    def __init__(
        self,
        name: str,
        *,
        grpc: Server | None = None,
        grpc_port: int = 0,
        sites: Sequence[tuple[str, HttpSite]] = (),
        ports: Mapping[str, int] | None = None,  # served by something the service stops in a cleanup
        background: Sequence[tuple[str, Background]] = (),
        on_start: Sequence[Callable[[], Awaitable[None]]] = (),
        cleanups: Sequence[Cleanup] = (),
    ) -> None:
        self.name = name
        self.grpc = grpc
        self.grpc_port = grpc_port
        self.sites = dict(sites)
        self._ports = dict(ports or {})
        self._background = list(background)
        self._on_start = list(on_start)
        self._cleanups = list(cleanups)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._stopping: asyncio.Future[None] | None = None

    @property
    def ports(self) -> dict[str, int]:
        """Every port the service listens on: ``grpc`` and each HTTP site's name."""
        ports = {**self._ports, **{name: site.port for name, site in self.sites.items()}}
        if self.grpc is not None:
            ports["grpc"] = self.grpc_port
        return ports

    @property
    def health_services(self) -> tuple[str, ...]:
        return self.grpc.service_names if self.grpc is not None else ()

    def add_cleanup(self, cleanup: Cleanup) -> None:
        """Run ``cleanup`` at stop, after the servers stopped (cleanups run newest first)."""
        self._cleanups.append(cleanup)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            for start in self._on_start:
                await start()
            for site in self.sites.values():
                await site.start()
            for task_name, run in self._background:
                self._tasks.append(asyncio.create_task(run(), name=f"{self.name}-{task_name}"))
            if self.grpc is not None:
                await self.grpc.start()
        except BaseException:
            await self.stop()
            raise

    async def begin_drain(self) -> None:
        """Health says NOT_SERVING from now on; :meth:`stop` closes the listener once the drain delay has passed
        (see :meth:`Server.begin_drain`)."""
        if self.grpc is not None:
            await self.grpc.begin_drain()

    async def stop(self, grace: float | None = None, *, drain: float | None = None) -> None:
        """``grace`` and ``drain`` default to the server's configuration (see :meth:`Server.stop`)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace, drain))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float | None, drain: float | None) -> None:
        if self.grpc is not None:
            await self.grpc.stop(grace, drain=drain)
        await cancel_all(self._tasks)
        for site in self.sites.values():
            await site.stop()
        for cleanup in reversed(self._cleanups):
            try:
                result = cleanup()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("error while stopping %s", self.name)
