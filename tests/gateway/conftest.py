"""The gateway on loopback in front of the Probe service (a real grpc.aio server), with an aiohttp client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import wrappers_pb2

from services.gateway.config import GatewayConfig, HttpConfig, LimitsConfig
from services.gateway.server import Gateway, create_server
from tests.gateway import grpcweb
from tests.gateway.deps import gateway_deps
from tests.gateway.probe import SERVICE, start_probe

PROBE = f"/{SERVICE}"


@dataclass
class Running:
    gateway: Gateway
    session: aiohttp.ClientSession
    backend: str

    @property
    def url(self) -> str:
        return self.gateway.public_url

    async def call(self, path: str, messages: Sequence[bytes] = (), **kw: Any) -> grpcweb.Reply:
        return await grpcweb.call(self.session, self.url, path, messages, **kw)

    async def echo(self, value: bytes = b"hello", **kw: Any) -> grpcweb.Reply:
        return await self.call(f"{PROBE}/Echo", [wrappers_pb2.BytesValue(value=value).SerializeToString()], **kw)


def config(static_dir: Path | None = None, **limits: Any) -> GatewayConfig:
    base = LimitsConfig(requests_per_second=10_000, burst=10_000)
    return GatewayConfig(
        http=HttpConfig(host="127.0.0.1", port=0),
        limits=base.model_copy(update=limits),
        static_dir=static_dir,
    )


@contextlib.asynccontextmanager
async def start_gateway(
    gateway_config: GatewayConfig, routes: Mapping[str, str], backend: str = ""
) -> AsyncIterator[Running]:
    service = await create_server(gateway_config.model_copy(update={"routes": dict(routes)}), gateway_deps())
    await service.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Running(service.gateway, session, backend)
    finally:
        await service.stop()


@pytest.fixture
async def probe() -> AsyncIterator[str]:
    server, address = await start_probe()
    yield address
    await server.stop(0)


@pytest.fixture
def gateway_config(tmp_path: Path) -> GatewayConfig:
    return config(static_dir=tmp_path / "no-build")


@pytest.fixture
async def gw(probe: str, gateway_config: GatewayConfig) -> AsyncIterator[Running]:
    async with start_gateway(gateway_config, {SERVICE: probe}, probe) as running:
        yield running


def ok(reply: grpcweb.Reply) -> grpcweb.Reply:
    assert reply.http_status == 200, reply
    assert reply.code == grpc.StatusCode.OK, (reply.code, reply.message)
    return reply
