"""The shared server runtime over real gRPC on loopback: interceptors, errors, health, shutdown, metrics."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from services.common.auth import AccessTokens, current_principal
from services.common.config import AuthConfig, ServerConfig
from services.common.denylist import InMemoryDenyList
from services.common.errors import NotFound, error_info
from services.common.metrics import start_metrics_endpoint
from services.common.server import Server, ServiceBinding, build_server

SERVICE = "test.v1.Probe"
KEY = "k" * 40


def _ident(b: bytes) -> bytes:
    return b


class _Probe:
    def __init__(self) -> None:
        self.slow_started = asyncio.Event()

    async def public(self, request: bytes, context: Any) -> bytes:
        return b"public:" + request

    async def whoami(self, request: bytes, context: Any) -> bytes:
        return current_principal().account_id.encode()

    async def slow(self, request: bytes, context: Any) -> bytes:
        self.slow_started.set()
        await asyncio.sleep(float(request or b"0.5"))
        return b"done"

    async def boom(self, request: bytes, context: Any) -> bytes:
        raise RuntimeError("secret internals: password=hunter2")

    async def missing(self, request: bytes, context: Any) -> bytes:
        raise NotFound("title titles/x does not exist", reason="TITLE_NOT_FOUND", metadata={"title": "x"})

    async def count(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        for i in range(int(request)):
            yield str(i).encode()


def _binding(probe: _Probe) -> ServiceBinding:
    handlers = {
        "Public": grpc.unary_unary_rpc_method_handler(probe.public, _ident, _ident),
        "WhoAmI": grpc.unary_unary_rpc_method_handler(probe.whoami, _ident, _ident),
        "Slow": grpc.unary_unary_rpc_method_handler(probe.slow, _ident, _ident),
        "Boom": grpc.unary_unary_rpc_method_handler(probe.boom, _ident, _ident),
        "Missing": grpc.unary_unary_rpc_method_handler(probe.missing, _ident, _ident),
        "Count": grpc.unary_stream_rpc_method_handler(probe.count, _ident, _ident),
    }
    generic = grpc.method_handlers_generic_handler(SERVICE, handlers)
    return ServiceBinding(
        name=SERVICE,
        add_to_server=lambda s: s.add_generic_rpc_handlers((generic,)),
        public_methods=frozenset({f"/{SERVICE}/Public"}),
    )


@pytest.fixture
def auth_config() -> AuthConfig:
    return AuthConfig(keys={"k1": SecretStr(KEY)}, signing_kid="k1")


@pytest.fixture
async def running(auth_config: AuthConfig) -> AsyncIterator[tuple[Server, grpc.aio.Channel, _Probe]]:
    probe = _Probe()
    server, port = build_server(
        ServerConfig(port=0, drain_delay=0),
        [_binding(probe)],
        tokens=AccessTokens(auth_config),
        denylist=InMemoryDenyList(),
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, channel, probe
    finally:
        await channel.close(None)
        await server.stop(0, drain=0)


def _call(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=_ident, response_deserializer=_ident)


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_health_serving_and_public_rpc(running: tuple[Server, grpc.aio.Channel, _Probe]) -> None:
    _, channel, _ = running
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    assert await _call(channel, "Public")(b"x") == b"public:x"


async def test_request_id_is_kept_or_made(running: tuple[Server, grpc.aio.Channel, _Probe]) -> None:
    _, channel, _ = running
    call = _call(channel, "Public")(b"", metadata=(("x-request-id", "abc-123"),))
    await call
    assert ("x-request-id", "abc-123") in list(await call.trailing_metadata())
    call = _call(channel, "Public")(b"", metadata=(("x-request-id", "bad id with spaces"),))
    await call
    rid = dict(await call.trailing_metadata())["x-request-id"]
    assert rid != "bad id with spaces" and len(rid) == 32


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ((), "missing"),
        ((("authorization", "Basic abc"),), "wrong scheme"),
        ((("authorization", "Bearer not-a-jwt"),), "garbage"),
    ],
)
async def test_auth_rejects_without_valid_token(
    running: tuple[Server, grpc.aio.Channel, _Probe], metadata: tuple[tuple[str, str], ...], why: str
) -> None:
    _, channel, _ = running
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "WhoAmI")(b"", metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, why


async def test_auth_expired_forged_and_unknown_key(
    running: tuple[Server, grpc.aio.Channel, _Probe], auth_config: AuthConfig
) -> None:
    _, channel, _ = running
    tokens = AccessTokens(auth_config)
    expired = tokens.issue("acc1", now=time.time() - 3600).token
    other_key = AccessTokens(AuthConfig(keys={"k1": SecretStr("x" * 40)}, signing_kid="k1")).issue("acc1").token
    unknown_kid = AccessTokens(AuthConfig(keys={"k9": SecretStr(KEY)}, signing_kid="k9")).issue("acc1").token
    good = tokens.issue("acc1").token
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    for token, what in [
        (expired, "expired"),
        (other_key, "forged"),
        (unknown_kid, "kid"),
        (tampered, "tamper"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(channel, "WhoAmI")(b"", metadata=_bearer(token))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, what
    assert "expired" in ((await _expect_error(channel, "WhoAmI", _bearer(expired))).details() or "")
    assert await _call(channel, "WhoAmI")(b"", metadata=_bearer(good)) == b"acc1"


async def test_access_log_names_the_caller(
    running: tuple[Server, grpc.aio.Channel, _Probe], auth_config: AuthConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """Every access-log line of an authenticated call carries its account and profile (they were null before: the
    auth interceptor's identity was gone by the time the outer interceptor logged)."""
    _, channel, _ = running
    token = AccessTokens(auth_config).issue("acc1", profile_id="prof1").token
    with caplog.at_level(logging.INFO, logger="marquee.access"):
        await _call(channel, "WhoAmI")(b"", metadata=_bearer(token))
        await _call(channel, "Public")(b"")
    lines = {r.method: r for r in caplog.records if r.name == "marquee.access"}  # type: ignore[attr-defined]
    assert (lines[f"/{SERVICE}/WhoAmI"].account, lines[f"/{SERVICE}/WhoAmI"].profile) == ("acc1", "prof1")  # type: ignore[attr-defined]
    assert (lines[f"/{SERVICE}/Public"].account, lines[f"/{SERVICE}/Public"].profile) == (None, None)  # type: ignore[attr-defined]


async def _expect_error(
    channel: grpc.aio.Channel, method: str, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, method)(b"", metadata=metadata)
    return err.value


async def test_errors_map_to_status_with_error_info(
    running: tuple[Server, grpc.aio.Channel, _Probe], auth_config: AuthConfig
) -> None:
    _, channel, _ = running
    md = _bearer(AccessTokens(auth_config).issue("acc1").token)
    err = await _expect_error(channel, "Missing", md)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "title titles/x does not exist"
    info = error_info(err)
    assert info is not None and info.reason == "TITLE_NOT_FOUND" and info.metadata["title"] == "x"

    err = await _expect_error(channel, "Boom", md)
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in (err.details() or "") and "Traceback" not in (err.details() or "")
    assert "request id" in (err.details() or "")


async def test_streaming_rpcs_pass_through_interceptors(
    running: tuple[Server, grpc.aio.Channel, _Probe], auth_config: AuthConfig
) -> None:
    _, channel, _ = running
    md = _bearer(AccessTokens(auth_config).issue("acc1").token)
    stream = channel.unary_stream(f"/{SERVICE}/Count", request_serializer=_ident, response_deserializer=_ident)
    assert [x async for x in stream(b"3", metadata=md)] == [b"0", b"1", b"2"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        _ = [x async for x in stream(b"3")]
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_deadline_exceeded_on_slow_handler(
    running: tuple[Server, grpc.aio.Channel, _Probe], auth_config: AuthConfig
) -> None:
    _, channel, _ = running
    md = _bearer(AccessTokens(auth_config).issue("acc1").token)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "Slow")(b"2", timeout=0.2, metadata=md)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_graceful_shutdown_health_first_inflight_finishes(auth_config: AuthConfig) -> None:
    probe = _Probe()
    server, port = build_server(
        ServerConfig(port=0, drain_delay=0.5),
        [_binding(probe)],
        tokens=AccessTokens(auth_config),
        denylist=InMemoryDenyList(),
    )
    await server.start()
    md = _bearer(AccessTokens(auth_config).issue("acc1").token)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        inflight = asyncio.ensure_future(_call(channel, "Slow")(b"1.0", metadata=md))
        await asyncio.wait_for(probe.slow_started.wait(), 5)
        stopping = asyncio.ensure_future(server.stop(grace=5))
        await asyncio.sleep(0.1)
        resp = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await inflight == b"done"
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(channel, "Public")(b"", timeout=1)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_drain_begun_early_says_not_serving_and_is_not_waited_again(auth_config: AuthConfig) -> None:
    """What a platform stopping several servers does: it begins every drain first (their delays run together)."""
    probe = _Probe()
    server, port = build_server(
        ServerConfig(port=0, drain_delay=3600),
        [_binding(probe)],
        tokens=AccessTokens(auth_config),
        denylist=InMemoryDenyList(),
    )
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await server.begin_drain(0)
        for name in ("", SERVICE):
            resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name))
            assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await _call(channel, "Public")(b"x") == b"public:x", "still serving while it drains"
        await server.stop(0)  # the drain begun above is over: not the configured hour again
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(channel, "Public")(b"", timeout=1)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_metrics_count_each_rpc_and_are_served(
    running: tuple[Server, grpc.aio.Channel, _Probe],
) -> None:
    _, channel, _ = running
    from services.common.metrics import RPC_REQUESTS

    before = RPC_REQUESTS.labels(SERVICE, "Public", "OK")._value.get()
    for _ in range(3):
        await _call(channel, "Public")(b"")
    await _expect_error(channel, "WhoAmI")
    assert RPC_REQUESTS.labels(SERVICE, "Public", "OK")._value.get() == before + 3
    endpoint = start_metrics_endpoint("127.0.0.1", 0)
    try:
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=5).read().decode()
        )
    finally:
        endpoint.stop()
    assert 'marquee_grpc_server_handled_total{grpc_code="UNAUTHENTICATED",grpc_method="WhoAmI"' in body
    assert "marquee_grpc_server_handling_seconds_bucket" in body
