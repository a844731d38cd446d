"""The gRPC server every service runs: interceptors, health, reflection, limits and graceful shutdown.

A service's ``create_server(config)`` builds its servicers and calls :func:`build_server`, which returns a
:class:`Server` (not yet started) and the bound port, so tests can bind port 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.auth import AccessTokens
from services.common.config import ServerConfig
from services.common.denylist import DenyList
from services.common.interceptors import PlatformInterceptor

log = logging.getLogger("marquee.server")


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to host: its full name, how to add its servicer, and which of its RPCs are public."""

    name: str  # e.g. "marquee.v1.AccountService"
    add_to_server: Callable[[grpc.aio.Server], None]
    public_methods: frozenset[str] = field(default_factory=frozenset)  # full names: /pkg.Service/Method


class Server:
    """A started-or-not grpc.aio server with its health servicer and shutdown sequence."""

    def __init__(
        self,
        grpc_server: grpc.aio.Server,
        health_servicer: Any,
        service_names: Sequence[str],
        config: ServerConfig,
        on_stop: Iterable[Callable[[], Any]] = (),
    ) -> None:
        self.grpc = grpc_server
        self.health = health_servicer
        self.service_names = tuple(service_names)
        self.config = config
        self._on_stop = list(on_stop)
        self._stopping: asyncio.Task[None] | None = None
        self._drain_ends: float | None = None  # loop time the drain delay begun by begin_drain ends

    def add_on_stop(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` (sync or async) after the server stopped: close stores, buses, workers."""
        self._on_stop.append(callback)

    async def start(self) -> None:
        await self.grpc.start()
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float | None = None, *, drain: float | None = None) -> None:
        """Graceful stop: health says NOT_SERVING, wait ``drain`` for load balancers to notice (what is left of it
        when :meth:`begin_drain` began it earlier), then stop accepting RPCs and give in-flight ones ``grace``
        seconds. Idempotent and safe to call concurrently."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace, drain))
        await asyncio.shield(self._stopping)

    async def begin_drain(self, drain: float | None = None) -> None:
        """The first step of :meth:`stop` on its own: health says NOT_SERVING from now on, and the listener closes
        no sooner than ``drain`` (default: the configured delay) after the first call. A platform stopping several
        servers begins every drain first, so their delays run together instead of one after another."""
        if self._drain_ends is None:
            await self.health.enter_graceful_shutdown()
            delay = self.config.drain_delay if drain is None else drain
            self._drain_ends = asyncio.get_running_loop().time() + delay

    async def _stop(self, grace: float | None, drain: float | None) -> None:
        await self.begin_drain(drain)
        assert self._drain_ends is not None
        remaining = self._drain_ends - asyncio.get_running_loop().time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        await self.grpc.stop(self.config.grace_period if grace is None else grace)
        for callback in self._on_stop:
            try:
                result = callback()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("error while closing after stop")

    async def wait_for_termination(self) -> None:
        await self.grpc.wait_for_termination()


def build_server(
    config: ServerConfig,
    services: Sequence[ServiceBinding],
    *,
    tokens: AccessTokens | None,
    denylist: DenyList | None,
) -> tuple[Server, int]:
    """Create the server with the platform interceptors, health and reflection; bind it; do not start it.

    ``tokens`` None means no authentication at all (only for servers whose every RPC is public); otherwise
    ``denylist`` is the revocation list every authenticated call is checked against."""
    public = frozenset().union(*(s.public_methods for s in services))
    if tokens is None:
        for s in services:
            prefix = f"/{s.name}/"
            if any(not m.startswith(prefix) for m in s.public_methods):
                raise ValueError(f"public methods of {s.name} must be under {prefix}")
    interceptor = PlatformInterceptor(tokens, denylist, public)
    options = [
        ("grpc.max_receive_message_length", config.max_receive_message_bytes),
        ("grpc.max_send_message_length", config.max_send_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(
        interceptors=[interceptor],
        options=options,
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for s in services:
        s.add_to_server(server)
    names = [s.name for s in services]
    if config.reflection:
        reflection.enable_server_reflection(
            (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    if port == 0:
        raise OSError(f"could not bind {config.host}:{config.port}")
    return Server(server, health_servicer, names, config), port


async def serve_until_signalled(servers: Sequence[Server]) -> None:
    """Run started servers until SIGTERM or SIGINT, then stop them all gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("signal received: shutting down")
        await asyncio.gather(*(s.stop() for s in servers))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
