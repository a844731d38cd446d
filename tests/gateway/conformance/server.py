"""The Connect conformance suite's server under test (connectconformance --mode server): a grpc.aio
ConformanceService as the backend and the gateway in front of it, both on 127.0.0.1.

The runner writes a length-prefixed ServerCompatRequest to stdin; this program starts the backend and the
gateway (the request's message_receive_limit becomes the gateway's message limit), answers with a
ServerCompatResponse naming the gateway's port on stdout, and serves until SIGTERM. The suite's Python modules
are generated at run time into .cache/ by scripts/conformance.sh (on PYTHONPATH), never checked in.

The service follows docs/testing_servers.md of connectrpc/conformance: echo the request headers, timeout and
messages; answer with the response definition's headers, data, delay, error (request info in its details when
nothing was sent) and trailers.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import signal
import struct
import sys
from collections.abc import AsyncIterator, Sequence
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

from services.gateway.config import GatewayConfig, HttpConfig, LimitsConfig
from services.gateway.server import create_server
from tests.gateway.deps import gateway_deps

SERVICE = "connectrpc.conformance.v1.ConformanceService"


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"connectrpc.conformance.v1.{name}")


def read_delimited(stream: Any) -> bytes:
    (size,) = struct.unpack(">I", stream.read(4))
    return bytes(stream.read(size))


class Conformance:
    """The ConformanceService's handlers over the generated messages (``service_pb2``)."""

    def __init__(self, pb: ModuleType) -> None:
        self.pb = pb

    def request_info(
        self, context: grpc.aio.ServicerContext[Any, Any], requests: Sequence[Any], *, with_headers: bool = True
    ) -> Any:
        info = self.pb.ConformancePayload.RequestInfo()
        for request in requests:
            packed = any_pb2.Any()
            packed.Pack(request)
            info.requests.append(packed)
        if not with_headers:
            return info
        grouped: dict[str, list[str]] = {}
        for key, value in context.invocation_metadata() or ():
            text = base64.b64encode(value).decode() if isinstance(value, bytes) else value
            grouped.setdefault(key, []).append(text)
        for name, values in grouped.items():
            info.request_headers.append(self.pb.Header(name=name, value=values))
        remaining = context.time_remaining()
        if remaining is not None:
            info.timeout_ms = max(0, int(remaining * 1000))
        return info

    @staticmethod
    def metadata(headers: Sequence[Any]) -> list[tuple[str, str | bytes]]:
        out: list[tuple[str, str | bytes]] = []
        for header in headers:
            name = header.name.lower()
            for value in header.value:
                out.append((name, base64.b64decode(value + "==") if name.endswith("-bin") else value))
        return out

    async def fail(self, context: grpc.aio.ServicerContext[Any, Any], error: Any, trailers: Sequence[Any]) -> None:
        code = error.code or 2  # CODE_UNKNOWN when unset; conformance codes match gRPC's numbers
        status = status_pb2.Status(code=code, message=error.message, details=list(error.details))
        converted = rpc_status.to_status(status)
        await context.abort(
            converted.code, error.message, trailing_metadata=(*self.metadata(trailers), *converted.trailing_metadata)
        )

    async def _unary(
        self, requests: Sequence[Any], definition: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        info = self.request_info(context, requests)
        if definition is None:
            return self.pb.ConformancePayload(request_info=info)
        await context.send_initial_metadata(self.metadata(definition.response_headers))
        if definition.WhichOneof("response") == "error":
            error = self.pb.Error()
            error.CopyFrom(definition.error)
            packed = any_pb2.Any()
            packed.Pack(info)
            error.details.append(packed)
            await asyncio.sleep(definition.response_delay_ms / 1000)
            await self.fail(context, error, definition.response_trailers)
        context.set_trailing_metadata(self.metadata(definition.response_trailers))
        await asyncio.sleep(definition.response_delay_ms / 1000)
        return self.pb.ConformancePayload(request_info=info, data=definition.response_data)

    async def unary(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        definition = request.response_definition if request.HasField("response_definition") else None
        return self.pb.UnaryResponse(payload=await self._unary([request], definition, context))

    async def idempotent_unary(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        definition = request.response_definition if request.HasField("response_definition") else None
        return self.pb.IdempotentUnaryResponse(payload=await self._unary([request], definition, context))

    async def client_stream(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        received = [r async for r in requests]
        first = received[0] if received else None
        definition = first.response_definition if first is not None and first.HasField("response_definition") else None
        return self.pb.ClientStreamResponse(payload=await self._unary(received, definition, context))

    async def _stream(
        self,
        requests: Sequence[Any],
        definition: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        response_type: Any,
    ) -> AsyncIterator[Any]:
        if definition is None:
            return
        # headers at once, so the client is unblocked before the first (possibly delayed) message
        await context.send_initial_metadata(self.metadata(definition.response_headers))
        context.set_trailing_metadata(self.metadata(definition.response_trailers))
        sent = 0
        for data in definition.response_data:
            payload = self.pb.ConformancePayload(data=data)
            if sent == 0:
                payload.request_info.CopyFrom(self.request_info(context, requests))
            await asyncio.sleep(definition.response_delay_ms / 1000)
            yield response_type(payload=payload)
            sent += 1
        if definition.HasField("error"):
            error = self.pb.Error()
            error.CopyFrom(definition.error)
            if sent == 0:
                packed = any_pb2.Any()
                packed.Pack(self.request_info(context, requests))
                error.details.append(packed)
            await self.fail(context, error, definition.response_trailers)

    async def server_stream(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        definition = request.response_definition if request.HasField("response_definition") else None
        async for response in self._stream([request], definition, context, self.pb.ServerStreamResponse):
            yield response

    async def bidi_stream(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        # half duplex (all that HTTP/1.1 allows): read every request, then answer
        received = [r async for r in requests]
        first = received[0] if received else None
        definition = first.response_definition if first is not None and first.HasField("response_definition") else None
        async for response in self._stream(received, definition, context, self.pb.BidiStreamResponse):
            yield response

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        pb = self.pb

        def codec(request_type: Any, response_type: Any) -> dict[str, Any]:
            return {
                "request_deserializer": request_type.FromString,
                "response_serializer": response_type.SerializeToString,
            }

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary, **codec(pb.UnaryRequest, pb.UnaryResponse)),
                "IdempotentUnary": grpc.unary_unary_rpc_method_handler(
                    self.idempotent_unary, **codec(pb.IdempotentUnaryRequest, pb.IdempotentUnaryResponse)
                ),
                "ClientStream": grpc.stream_unary_rpc_method_handler(
                    self.client_stream, **codec(pb.ClientStreamRequest, pb.ClientStreamResponse)
                ),
                "ServerStream": grpc.unary_stream_rpc_method_handler(
                    self.server_stream, **codec(pb.ServerStreamRequest, pb.ServerStreamResponse)
                ),
                "BidiStream": grpc.stream_stream_rpc_method_handler(
                    self.bidi_stream, **codec(pb.BidiStreamRequest, pb.BidiStreamResponse)
                ),
                # "Unimplemented" is deliberately not implemented
            },
        )


async def serve(request: Any, compat: ModuleType, service: ModuleType) -> None:
    backend = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.so_reuseport", 0)])
    backend.add_generic_rpc_handlers((Conformance(service).handler(),))
    backend_port = backend.add_insecure_port("127.0.0.1:0")
    await backend.start()
    limits = LimitsConfig(requests_per_second=100_000, burst=100_000)
    if request.message_receive_limit:
        limits = limits.model_copy(update={"max_message_bytes": request.message_receive_limit})
    config = GatewayConfig(http=HttpConfig(host="127.0.0.1", port=0), limits=limits)
    config = config.model_copy(update={"routes": {SERVICE: f"127.0.0.1:{backend_port}"}})
    gateway = await create_server(config, gateway_deps())
    await gateway.start()
    response = compat.ServerCompatResponse(host="127.0.0.1", port=gateway.ports["http"]).SerializeToString()
    sys.stdout.buffer.write(struct.pack(">I", len(response)) + response)
    sys.stdout.buffer.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gateway.stop()
    await backend.stop(0)


def main() -> None:
    compat = _module("server_compat_pb2")
    service = _module("service_pb2")  # loads the ConformanceService descriptors the gateway routes by
    request = compat.ServerCompatRequest.FromString(read_delimited(sys.stdin.buffer))
    if request.use_tls:
        raise SystemExit("TLS is not supported by this server under test (supportsTls: false)")
    asyncio.run(serve(request, compat, service))


if __name__ == "__main__":
    main()
