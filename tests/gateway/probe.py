"""A small real grpc.aio service for the gateway's protocol tests: ``marquee.test.Probe``, declared with
descriptors built here (messages are the well-known wrappers), so the gateway routes it like any service.

    Echo(BytesValue) -> BytesValue                 the value back; reply headers/trailers asked for in metadata
    Inspect(Empty) -> StringValue                  JSON of the metadata and deadline the backend received
    Sleep(Duration) -> Empty                       answers after the duration
    Count(Int32Value) -> stream Int32Value         0..n-1, ``x-delay-ms`` apart, headers sent first
    Collect(stream BytesValue) -> BytesValue       the values concatenated
    Fail(StringValue "CODE message") -> Empty      that status, with an ErrorInfo in grpc-status-details-bin
    Blob(Int32Value) -> BytesValue                 n bytes
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2, empty_pb2, wrappers_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

SERVICE = "marquee.test.Probe"
Context = grpc.aio.ServicerContext[Any, Any]
ACTIVE_STREAMS: set[int] = set()  # ids of Count calls still running (a cancelled call leaves it)


def register_descriptors() -> None:
    """Add the Probe service to the default descriptor pool (once)."""
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(SERVICE)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto(
        name="marquee_test/probe.proto",
        package="marquee.test",
        syntax="proto3",
        dependency=[
            wrappers_pb2.DESCRIPTOR.name,
            duration_pb2.DESCRIPTOR.name,
            empty_pb2.DESCRIPTOR.name,
        ],
    )
    service = file.service.add(name="Probe")
    for name, request, response, client_streaming, server_streaming in (
        ("Echo", "BytesValue", "BytesValue", False, False),
        ("Inspect", "Empty", "StringValue", False, False),
        ("Sleep", "Duration", "Empty", False, False),
        ("Count", "Int32Value", "Int32Value", False, True),
        ("Collect", "BytesValue", "BytesValue", True, False),
        ("Fail", "StringValue", "Empty", False, False),
        ("Blob", "Int32Value", "BytesValue", False, False),
    ):
        service.method.add(
            name=name,
            input_type=f".google.protobuf.{request}",
            output_type=f".google.protobuf.{response}",
            client_streaming=client_streaming,
            server_streaming=server_streaming,
        )
    pool.AddSerializedFile(file.SerializeToString())


def _metadata(context: Context) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}


async def echo(request: wrappers_pb2.BytesValue, context: Context) -> wrappers_pb2.BytesValue:
    md = _metadata(context)
    if "x-reply-header" in md:
        await context.send_initial_metadata(
            (("x-reply-header", md["x-reply-header"]), ("x-reply-bin", b"\x00\xffheader"))
        )
    if "x-reply-trailer" in md:
        context.set_trailing_metadata((("x-reply-trailer", md["x-reply-trailer"]), ("x-trailer-bin", b"\x01\x02")))
    return wrappers_pb2.BytesValue(value=request.value)


async def inspect(request: empty_pb2.Empty, context: Context) -> wrappers_pb2.StringValue:
    pairs = [
        [k, base64.b64encode(v).decode() if isinstance(v, bytes) else v] for k, v in context.invocation_metadata() or ()
    ]
    return wrappers_pb2.StringValue(value=json.dumps({"metadata": pairs, "timeout": context.time_remaining()}))


async def sleep(request: duration_pb2.Duration, context: Context) -> empty_pb2.Empty:
    await asyncio.sleep(request.ToTimedelta().total_seconds())
    return empty_pb2.Empty()


async def count(request: wrappers_pb2.Int32Value, context: Context) -> AsyncIterator[wrappers_pb2.Int32Value]:
    delay = int(_metadata(context).get("x-delay-ms", "0")) / 1000
    await context.send_initial_metadata((("x-stream", "yes"),))
    context.set_trailing_metadata((("x-counted", str(request.value)),))
    ACTIVE_STREAMS.add(id(context))
    try:
        for i in range(request.value):
            await asyncio.sleep(delay)
            yield wrappers_pb2.Int32Value(value=i)
    finally:
        ACTIVE_STREAMS.discard(id(context))


async def collect(requests: AsyncIterator[wrappers_pb2.BytesValue], context: Context) -> wrappers_pb2.BytesValue:
    return wrappers_pb2.BytesValue(value=b"".join([r.value async for r in requests]))


async def fail(request: wrappers_pb2.StringValue, context: Context) -> empty_pb2.Empty:
    name, _, message = request.value.partition(" ")
    code = grpc.StatusCode[name]
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="PROBE_FAILED", domain="marquee.test"))
    status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[info]))
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable")


async def blob(request: wrappers_pb2.Int32Value, context: Context) -> wrappers_pb2.BytesValue:
    return wrappers_pb2.BytesValue(value=b"x" * request.value)


def _handler() -> grpc.GenericRpcHandler[Any, Any]:
    def shape(request: Any, response: Any) -> dict[str, Any]:
        return {"request_deserializer": request.FromString, "response_serializer": response.SerializeToString}

    bv, iv, sv, empty = wrappers_pb2.BytesValue, wrappers_pb2.Int32Value, wrappers_pb2.StringValue, empty_pb2.Empty
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo, **shape(bv, bv)),
            "Inspect": grpc.unary_unary_rpc_method_handler(inspect, **shape(empty, sv)),
            "Sleep": grpc.unary_unary_rpc_method_handler(sleep, **shape(duration_pb2.Duration, empty)),
            "Count": grpc.unary_stream_rpc_method_handler(count, **shape(iv, iv)),
            "Collect": grpc.stream_unary_rpc_method_handler(collect, **shape(bv, bv)),
            "Fail": grpc.unary_unary_rpc_method_handler(fail, **shape(sv, empty)),
            "Blob": grpc.unary_unary_rpc_method_handler(blob, **shape(iv, bv)),
        },
    )


async def start_probe(port: int = 0) -> tuple[grpc.aio.Server, str]:
    register_descriptors()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((_handler(),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, f"127.0.0.1:{bound}"
