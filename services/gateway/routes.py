"""The routing table: which backend serves each gRPC service, and the shape of each of its methods (unary or
streaming on either side), read from the proto descriptors the process has loaded.

Under ``marquee up`` the table is discovered: every backend that started is asked (``grpc.health.v1``) which
``marquee.v1`` services it serves. In a distributed install it is configured (``[services.gateway] routes``).
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

import marquee.v1
from services.common.targets import channel_target

# Services other services call and browsers never do: the gateway does not route them, discovered or configured.
INTERNAL_SERVICES = frozenset({"marquee.v1.ContentKeyService"})


class UnknownService(ValueError):
    """A configured route names a service whose descriptors are not loaded, or an internal one."""


@dataclass(frozen=True)
class Method:
    path: str  # "/marquee.v1.CatalogService/SearchTitles"
    service: str
    name: str
    client_streaming: bool
    server_streaming: bool
    backend: str  # host:port


@dataclass(frozen=True)
class Route:
    method: Method
    callable: Any  # a grpc.aio multicallable of the method's shape, sending and receiving raw bytes


class Routes:
    """Methods by path, each bound to a channel to its backend (one channel per backend address)."""

    def __init__(
        self,
        table: Mapping[str, str],
        *,
        pool: descriptor_pool.DescriptorPool | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        pool = pool or descriptor_pool.Default()
        self.table = dict(table)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._routes: dict[str, Route] = {}
        for service_name, address in sorted(self.table.items()):
            if service_name in INTERNAL_SERVICES:
                raise UnknownService(f"{service_name} is internal: the gateway does not route it")
            try:
                service = pool.FindServiceByName(service_name)
            except KeyError:
                raise UnknownService(
                    f"no descriptors for service {service_name!r}: is its _pb2 module imported?"
                ) from None
            channel = self._channels.get(address)
            if channel is None:
                target, balanced = channel_target(address)
                channel = grpc.aio.insecure_channel(target, options=[*balanced, *channel_options])
                self._channels[address] = channel
            for m in _methods(service, address):
                self._routes[m.path] = Route(m, _multicallable(channel, m))

    def lookup(self, path: str) -> Route | None:
        return self._routes.get(path)

    def service_known(self, service: str) -> bool:
        return service in self.table

    async def close(self) -> None:
        """Close every channel, cancelling the calls still on them (idempotent)."""
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)


def _methods(service: ServiceDescriptor, backend: str) -> list[Method]:
    return [
        Method(
            path=f"/{service.full_name}/{m.name}",
            service=service.full_name,
            name=m.name,
            client_streaming=m.client_streaming,
            server_streaming=m.server_streaming,
            backend=backend,
        )
        for m in service.methods
    ]


def _multicallable(channel: grpc.aio.Channel, m: Method) -> Any:
    # no serializers: requests and responses stay the bytes the browser sent and the backend answered
    if m.client_streaming:
        if m.server_streaming:
            return channel.stream_stream(m.path, None, None)
        return channel.stream_unary(m.path, None, None)
    if m.server_streaming:
        return channel.unary_stream(m.path, None, None)
    return channel.unary_unary(m.path, None, None)


def marquee_services() -> list[str]:
    """Every service of the ``marquee.v1`` contracts a browser may call (importing their modules loads the
    descriptors); :data:`INTERNAL_SERVICES` are left out."""
    names: list[str] = []
    for info in pkgutil.iter_modules(marquee.v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"marquee.v1.{info.name}")
            names += [s.full_name for s in module.DESCRIPTOR.services_by_name.values()]
    return sorted(n for n in names if n not in INTERNAL_SERVICES)


async def discover(addresses: Iterable[str], services: Iterable[str], timeout: float = 5.0) -> dict[str, str]:
    """Which of ``addresses`` serves each of ``services``, asked through each backend's grpc.health.v1 (a
    backend answers NOT_FOUND for a service it does not host)."""
    wanted = list(services)
    found: dict[str, str] = {}

    async def ask(address: str) -> list[str]:
        hosted = []
        target, balanced = channel_target(address)
        async with grpc.aio.insecure_channel(target, options=balanced) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for name in wanted:
                try:
                    await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=timeout)
                except grpc.aio.AioRpcError as err:
                    if err.code() == grpc.StatusCode.NOT_FOUND:
                        continue
                    raise
                hosted.append(name)
        return hosted

    ordered = list(dict.fromkeys(addresses))
    for address, hosted in zip(ordered, await asyncio.gather(*(ask(a) for a in ordered)), strict=True):
        for name in hosted:
            found.setdefault(name, address)
    return found
