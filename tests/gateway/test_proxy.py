"""The gateway proxying gRPC-web to a real grpc.aio backend over loopback: both modes, streams, trailers,
deadlines, metadata both ways, CORS and metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import duration_pb2, empty_pb2, wrappers_pb2
from google.rpc import error_details_pb2
from prometheus_client import REGISTRY

from services.gateway.config import CorsConfig, GatewayConfig
from tests.gateway import grpcweb
from tests.gateway.conftest import PROBE, Running, config, ok, start_gateway
from tests.gateway.probe import SERVICE


def _int(value: int) -> bytes:
    return wrappers_pb2.Int32Value(value=value).SerializeToString()


def _ints(messages: list[bytes]) -> list[int]:
    return [wrappers_pb2.Int32Value.FromString(m).value for m in messages]


async def _inspect(gw: Running, **kw: Any) -> dict[str, Any]:
    reply = ok(await gw.call(f"{PROBE}/Inspect", [empty_pb2.Empty().SerializeToString()], **kw))
    seen: dict[str, Any] = json.loads(wrappers_pb2.StringValue.FromString(reply.messages[0]).value)
    return seen


async def test_binary_round_trip_ends_with_a_trailers_frame(gw: Running) -> None:
    reply = ok(await gw.echo(b"binary \x00\xff bytes"))
    assert reply.header("content-type") == grpcweb.BINARY
    assert [wrappers_pb2.BytesValue.FromString(m).value for m in reply.messages] == [b"binary \x00\xff bytes"]
    assert not reply.trailers_only
    assert reply.trailer_frame is not None and reply.trailer_frame.startswith(b"grpc-status: 0\r\n")
    assert reply.trailer_frame.endswith(b"\r\n")
    assert reply.trailer("x-request-id")


@pytest.mark.parametrize("chunks", [1, 2, 5])
async def test_text_mode_round_trip_with_separately_padded_chunks(gw: Running, chunks: int) -> None:
    value = bytes(range(256)) * 3
    reply = ok(await gw.echo(value, text=True, chunks=chunks))
    assert reply.header("content-type") == grpcweb.TEXT
    assert reply.body and set(reply.body) <= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    assert [wrappers_pb2.BytesValue.FromString(m).value for m in reply.messages] == [value]


async def test_content_type_variants_are_echoed(gw: Running) -> None:
    for content_type, text in (
        ("application/grpc-web", False),
        ("application/grpc-web+proto", False),
        ("application/grpc-web-text+proto", True),
        ("Application/GRPC-Web; charset=utf-8", False),
    ):
        message = wrappers_pb2.BytesValue(value=b"x").SerializeToString()
        body = grpcweb.frame(message)
        reply = ok(
            await gw.call(
                f"{PROBE}/Echo", body=base64.b64encode(body) if text else body, content_type=content_type, text=text
            )
        )
        assert reply.header("content-type") == content_type.split(";")[0].lower()


async def test_server_streaming_sends_headers_first_then_each_message(gw: Running) -> None:
    reply = ok(await gw.call(f"{PROBE}/Count", [_int(5)]))
    assert _ints(reply.messages) == [0, 1, 2, 3, 4]
    assert reply.header("x-stream") == "yes"
    assert reply.trailer("x-counted") == "5"
    # the response starts (status and headers) before the backend's first, delayed, message
    async with gw.session.post(
        f"{gw.url}{PROBE}/Count",
        data=grpcweb.frame(_int(2)),
        headers={"content-type": grpcweb.BINARY, "x-delay-ms": "600"},
    ) as response:
        started = time.monotonic()
        assert response.status == 200 and response.headers["x-stream"] == "yes"
        first = await response.content.readexactly(5 + len(_int(0)))
        assert time.monotonic() - started > 0.3, "the first message arrived with the headers"
        assert first[0] == 0
        rest = await response.read()
    parsed = grpcweb.parse(200, {}, first + rest, text=False)
    assert _ints(parsed.messages) == [0, 1] and parsed.trailer("grpc-status") == "0"


async def test_server_streaming_in_text_mode(gw: Running) -> None:
    reply = ok(await gw.call(f"{PROBE}/Count", [_int(3)], text=True, chunks=2))
    assert _ints(reply.messages) == [0, 1, 2]


async def test_empty_stream_is_still_answered_with_headers_and_trailers(gw: Running) -> None:
    reply = ok(await gw.call(f"{PROBE}/Count", [_int(0)]))
    assert reply.messages == [] and reply.header("x-stream") == "yes" and reply.trailer("x-counted") == "0"


async def test_client_streaming_forwards_every_message(gw: Running) -> None:
    parts = [wrappers_pb2.BytesValue(value=bytes([i]) * 10).SerializeToString() for i in range(4)]
    reply = ok(await gw.call(f"{PROBE}/Collect", parts, text=True, chunks=3))
    assert wrappers_pb2.BytesValue.FromString(reply.messages[0]).value == b"".join(bytes([i]) * 10 for i in range(4))


async def test_errors_are_trailers_only_with_status_details(gw: Running) -> None:
    failing = wrappers_pb2.StringValue(value="FAILED_PRECONDITION not now: 100% ünïcode").SerializeToString()
    reply = await gw.call(f"{PROBE}/Fail", [failing])
    assert reply.http_status == 200 and reply.trailers_only and reply.body == b""
    assert reply.code == grpc.StatusCode.FAILED_PRECONDITION
    assert reply.message == "not now: 100% ünïcode"
    assert reply.trailer("grpc-message") == "not now: 100%25 %C3%BCn%C3%AFcode"
    details = reply.status_details()
    assert details is not None and details.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    info = error_details_pb2.ErrorInfo()
    assert details.details[0].Unpack(info) and info.reason == "PROBE_FAILED"


async def test_grpc_timeout_is_the_backend_deadline(gw: Running) -> None:
    seen = await _inspect(gw, headers={"grpc-timeout": "1500m"})
    assert 1.0 < seen["timeout"] <= 1.5  # never later than the client's deadline (grpc core rounds up)
    assert "grpc-timeout" not in {k for k, _ in seen["metadata"]}
    nap = duration_pb2.Duration(seconds=2).SerializeToString()
    started = time.monotonic()
    reply = await gw.call(f"{PROBE}/Sleep", [nap], headers={"grpc-timeout": "200m"})
    assert reply.code == grpc.StatusCode.DEADLINE_EXCEEDED  # the 2 s nap would have ended OK
    assert time.monotonic() - started > 0.15
    # a stream past its deadline: the messages sent so far, then DEADLINE_EXCEEDED in the trailers frame
    reply = await gw.call(f"{PROBE}/Count", [_int(100)], headers={"grpc-timeout": "400m", "x-delay-ms": "100"})
    assert reply.code == grpc.StatusCode.DEADLINE_EXCEEDED and not reply.trailers_only
    assert 1 <= len(reply.messages) <= 4


async def test_no_grpc_timeout_means_no_backend_deadline_but_a_gateway_limit(probe: str, tmp_path: Any) -> None:
    async with start_gateway(config(default_timeout=0.3), {SERVICE: probe}) as gw:
        seen = await _inspect(gw)
        assert seen["timeout"] is None
        reply = await gw.call(f"{PROBE}/Sleep", [duration_pb2.Duration(seconds=3).SerializeToString()])
        assert reply.code == grpc.StatusCode.DEADLINE_EXCEEDED  # the 3 s nap would have ended OK
        # streams are not limited by it
        ok(await gw.call(f"{PROBE}/Count", [_int(5)], headers={"x-delay-ms": "100"}))


async def test_request_metadata_passes_through_and_the_rest_stays(gw: Running) -> None:
    seen = await _inspect(
        gw,
        headers={
            "authorization": "Bearer abc.def.ghi",
            "x-custom": "one",
            "x-trace-bin": base64.b64encode(b"\x00\x01\xfe").decode().rstrip("="),
            "x-request-id": "req-123",
            "cookie": "session=secret",
            "origin": f"http://{gw.url.split('//')[1]}",
            "x-forwarded-for": "203.0.113.9",
            "connection": "keep-alive, x-hop",
            "x-hop": "hop-by-hop",
        },
    )
    md: dict[str, list[str]] = {}
    for key, value in seen["metadata"]:
        md.setdefault(key, []).append(value)
    assert md["authorization"] == ["Bearer abc.def.ghi"]
    assert md["x-custom"] == ["one"]
    assert md["x-trace-bin"] == [base64.b64encode(b"\x00\x01\xfe").decode()]
    assert md["x-request-id"] == ["req-123"]
    assert md["x-forwarded-for"] == ["127.0.0.1"]  # the client's address; its own claim is not trusted
    for dropped in ("cookie", "origin", "x-hop", "content-type", "x-grpc-web-text", "grpc-timeout"):
        assert dropped not in md


async def test_trusted_forwarded_for_is_extended(probe: str) -> None:
    trusting = config().model_copy(update={"trusted_proxies": ("127.0.0.0/8",)})
    async with start_gateway(trusting, {SERVICE: probe}) as gw:
        seen = await _inspect(gw, headers={"x-forwarded-for": "203.0.113.9"})
        assert ["x-forwarded-for", "203.0.113.9, 127.0.0.1"] in seen["metadata"]


async def test_response_headers_and_trailers_come_back(gw: Running) -> None:
    reply = ok(await gw.echo(b"x", headers={"x-reply-header": "h1", "x-reply-trailer": "t1"}))
    assert reply.header("x-reply-header") == "h1"
    assert base64.b64decode(f"{reply.header('x-reply-bin')}==") == b"\x00\xffheader"
    assert reply.trailer("x-reply-trailer") == "t1"
    assert base64.b64decode(f"{reply.trailer('x-trailer-bin')}==") == b"\x01\x02"


async def test_cors_preflight_and_response_headers(probe: str) -> None:
    cors = CorsConfig(allowed_origins=["https://player.example"])
    gateway_config = GatewayConfig(http=config().http, limits=config().limits, cors=cors)
    async with start_gateway(gateway_config, {SERVICE: probe}) as gw:
        preflight_headers = {
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-grpc-web,authorization,grpc-timeout,x-user-agent",
        }
        async with gw.session.options(f"{gw.url}{PROBE}/Echo", headers=preflight_headers) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "https://player.example"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            allowed = {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "authorization"} <= allowed
            assert int(response.headers["Access-Control-Max-Age"]) > 0
            assert response.headers["Vary"] == "Origin"
        async with gw.session.options(
            f"{gw.url}{PROBE}/Echo", headers={**preflight_headers, "Origin": "https://evil.example"}
        ) as response:
            assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers

        reply = ok(await gw.echo(headers={"Origin": "https://player.example"}))
        assert reply.header("access-control-allow-origin") == "https://player.example"
        exposed = {h.strip() for h in (reply.header("access-control-expose-headers") or "").split(",")}
        assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed
        failing = wrappers_pb2.StringValue(value="NOT_FOUND gone").SerializeToString()
        reply = await gw.call(f"{PROBE}/Fail", [failing], headers={"Origin": "https://player.example"})
        assert reply.trailers_only and reply.header("access-control-allow-origin") == "https://player.example"
        # a browser on another origin is refused before any backend sees the call
        reply = await gw.echo(headers={"Origin": "https://evil.example"})
        assert reply.code == grpc.StatusCode.PERMISSION_DENIED
        assert reply.header("access-control-allow-origin") is None
        # the gateway's own origin (the player it serves) is always allowed
        own = f"http://{gw.url.split('//')[1]}"
        assert ok(await gw.echo(headers={"Origin": own})).header("access-control-allow-origin") == own


async def test_any_origin_by_default(gw: Running) -> None:
    reply = ok(await gw.echo(headers={"Origin": "http://localhost:5173"}))
    assert reply.header("access-control-allow-origin") == "*"
    async with gw.session.options(
        f"{gw.url}/x", headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}
    ) as response:
        assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == "*"


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_requests_by_status_and_mode(gw: Running) -> None:
    labels = {"grpc_service": SERVICE, "grpc_method": "Echo", "grpc_code": "OK", "mode": "text"}
    before = _sample("marquee_gateway_requests_total", labels)
    ok(await gw.echo(text=True))
    assert _sample("marquee_gateway_requests_total", labels) == before + 1
    unknown = {"grpc_service": "unknown", "grpc_method": "unknown", "grpc_code": "UNIMPLEMENTED", "mode": "binary"}
    before = _sample("marquee_gateway_requests_total", unknown)
    await gw.call("/no.such.Service/Nope", [b""])
    assert _sample("marquee_gateway_requests_total", unknown) == before + 1


async def test_healthz(gw: Running) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/healthz") as response:
        assert response.status == 200 and await response.text() == "ok\n"


async def test_stopping_lets_unary_calls_finish_and_cuts_open_streams(probe: str) -> None:
    # the grace is ten times the unary call's length, so a busy machine still finishes it within the grace
    gateway_config = config().model_copy(update={"grace_period": 3.0})
    async with start_gateway(gateway_config, {SERVICE: probe}) as gw:
        stream = await gw.session.post(
            f"{gw.url}{PROBE}/Count",
            data=grpcweb.frame(_int(100_000)),
            headers={"content-type": grpcweb.BINARY, "x-delay-ms": "20"},
        )
        head = await stream.content.readexactly(5)
        nap_for = duration_pb2.Duration(nanos=300_000_000).SerializeToString()
        nap = asyncio.create_task(gw.call(f"{PROBE}/Sleep", [nap_for]))
        while gw.gateway.proxy.in_flight < 2:  # the unary call has reached the gateway: it is in flight at stop
            assert not nap.done(), nap.result()
            await asyncio.sleep(0.01)
        await gw.gateway.stop()
        assert (await nap).code == grpc.StatusCode.OK  # within the grace period
        cut = grpcweb.parse(200, {}, head + await stream.read(), text=False)
        assert cut.trailer("grpc-status") == str(grpc.StatusCode.UNAVAILABLE.value[0])
        assert "shutting down" in cut.message
