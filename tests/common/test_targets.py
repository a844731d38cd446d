"""Addresses of several replicas: round robin over them, skipping one that is shutting down or gone."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from services.common.client import connect
from services.common.config import ServerConfig
from services.common.server import Server, ServiceBinding, build_server
from services.common.targets import MAX_RECONNECT_BACKOFF_MS, channel_target, is_address

SERVICE = "test.v1.Which"


def _ident(b: bytes) -> bytes:
    return b


def _replica(name: bytes) -> tuple[Server, int]:
    async def which(request: bytes, context: Any) -> bytes:
        return name

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Which": grpc.unary_unary_rpc_method_handler(which, _ident, _ident)}
    )
    binding = ServiceBinding(
        SERVICE, lambda s: s.add_generic_rpc_handlers((handler,)), frozenset({f"/{SERVICE}/Which"})
    )
    return build_server(ServerConfig(port=0, drain_delay=0.5, grace_period=1), [binding], tokens=None, denylist=None)


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("catalog:50052", "catalog:50052"),
        ("127.0.0.1:1,127.0.0.2:2", "ipv4:127.0.0.1:1,127.0.0.2:2"),
        ("dns:///catalog.marquee.svc:50052", "dns:///catalog.marquee.svc:50052"),
    ],
)
def test_targets(address: str, target: str) -> None:
    got, options = channel_target(address)
    assert got == target
    assert is_address(address)
    # a replica (or the one replica) that restarted is tried again within 2 s, not gRPC's default 2 minutes
    assert dict(options)["grpc.max_reconnect_backoff_ms"] == MAX_RECONNECT_BACKOFF_MS == 2_000
    if "," in address:  # the calls' :authority is one valid host:port, not the list (tests/playback/test_ingest.py)
        assert dict(options)["grpc.default_authority"] == address.split(",")[0]


@pytest.mark.parametrize("address", ["a:1,b:2", "nohost", "127.0.0.1:x", ":50052"])
def test_bad_addresses(address: str) -> None:
    assert not is_address(address)


async def test_calls_spread_over_replicas_and_skip_one_that_stops() -> None:
    (a, port_a), (b, port_b) = _replica(b"a"), _replica(b"b")
    await a.start()
    await b.start()
    channel = connect(f"127.0.0.1:{port_a},127.0.0.1:{port_b}")
    call = channel.unary_unary(f"/{SERVICE}/Which", request_serializer=_ident, response_deserializer=_ident)
    try:
        seen = {await call(b"", wait_for_ready=True) for _ in range(40)}
        assert seen == {b"a", b"b"}
        stopping = asyncio.create_task(a.stop())  # NOT_SERVING for its drain delay, then gone
        answers = [await call(b"", wait_for_ready=True) for _ in range(60)]
        await stopping
        answers += [await call(b"", wait_for_ready=True) for _ in range(20)]
        assert answers[-20:] == [b"b"] * 20  # every call after the stop went to the live replica, none failed
    finally:
        await channel.close(None)
        await b.stop(0, drain=0)
