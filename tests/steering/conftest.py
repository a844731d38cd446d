"""A SteeringService on loopback (gRPC and HTTP) with admin credentials, for service and failover tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from marquee.native import TokenKeyring
from marquee.v1 import steering_pb2 as pb
from marquee.v1 import steering_pb2_grpc
from services.common import urltokens
from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.config import ServerConfig, load_config
from services.common.deps import Dependencies
from services.common.http import HttpSite
from services.common.paging import PageTokens
from services.common.ratelimit import InMemoryRateLimiter
from services.common.store.sqlite import SqliteStore
from services.platform.admin import admin_metadata
from services.platform.runtime import local_config
from services.steering.config import HttpConfig, SteeringConfig
from services.steering.server import create_server
from services.steering.steerer import Steering


@dataclass
class Running:
    stub: Any
    metadata: tuple[tuple[str, str], ...]
    http: HttpSite
    steering: Steering
    address: str
    data_dir: Path
    url_keys: TokenKeyring

    def token(self, session_id: str, ttl: int = 300) -> str:
        """A session's signed URL token, as playback makes it."""
        acl = urltokens.session_acl(session_id, "any-media")
        return self.url_keys.sign(acl, int(time.time()) + ttl, session_id)

    def signed(self, url: str) -> str:
        """A steering manifest URL with its session's token (the session is the path's last segment)."""
        path, _, query = url.partition("?")
        token = self.token(path.rsplit("/", 1)[-1])
        return f"{path}?token={token}" + (f"&{query}" if query else "")

    def edge(self, edge_id: str, port: int, host: str = "127.0.0.1", **kw: Any) -> pb.RegisterEdgeRequest:
        edge = pb.Edge(
            pathway_id=edge_id,
            base_uri=f"http://{host}:{port}/v/",
            zone=kw.pop("zone", "local"),
            role=kw.pop("role", pb.EDGE_ROLE_EDGE),
            capacity_bps=kw.pop("capacity_bps", 10**9),
            **kw,
        )
        return pb.RegisterEdgeRequest(edge=edge, edge_id=edge_id)


@pytest.fixture
def steering_config() -> SteeringConfig:
    return SteeringConfig(server=ServerConfig(port=0, drain_delay=0, grace_period=1), http=HttpConfig(port=0))


@contextlib.asynccontextmanager
async def start_steering(tmp_path: Path, steering_config: SteeringConfig) -> AsyncIterator[Running]:
    """SteeringService on loopback, with the admin credentials of a platform data dir under ``tmp_path``."""
    platform = local_config(load_config(data_dir=tmp_path / "data"))
    tokens = AccessTokens(platform.auth)
    store = SqliteStore(tmp_path / "s.db")
    deps = Dependencies(
        store,
        InMemoryBus(),
        InMemoryRateLimiter(),
        platform.auth,
        tokens,
        PageTokens(b"k"),
        url_signing=platform.url_signing,
    )
    service = await create_server(steering_config, deps)
    await service.start()
    address = f"127.0.0.1:{service.grpc_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        yield Running(
            steering_pb2_grpc.SteeringServiceStub(channel),
            admin_metadata(platform),
            service.sites["http"],
            service.steering,
            address,
            tmp_path / "data",
            urltokens.keyring(platform.url_signing),
        )
    await service.stop()
    await store.close()


@pytest.fixture
async def running(tmp_path: Path, steering_config: SteeringConfig) -> AsyncIterator[Running]:
    async with start_steering(tmp_path, steering_config) as r:
        yield r
