"""A request message that does not decode is INVALID_ARGUMENT with an ErrorInfo reason, whoever sends it (with or
without a token, unary or server-streaming): never UNKNOWN with the decoder's Python exception class."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import DecodeError
from pydantic import SecretStr

from services.common.auth import AccessTokens
from services.common.config import AuthConfig, ServerConfig
from services.common.denylist import InMemoryDenyList
from services.common.errors import error_info
from services.common.server import ServiceBinding, build_server

SERVICE = "test.v1.Strings"
AUTH = AuthConfig(keys={"k1": SecretStr("m" * 40)}, signing_kid="k1")
# field 1 (a string) declared 16 bytes long with 3 present: no message type can decode it
GARBAGE = b"\x0a\x10abc"


class _Strings:
    def __init__(self) -> None:
        self.calls = 0

    async def upper(self, request: wrappers_pb2.StringValue, context: Any) -> wrappers_pb2.StringValue:
        self.calls += 1
        return wrappers_pb2.StringValue(value=request.value.upper())

    async def letters(self, request: wrappers_pb2.StringValue, context: Any) -> AsyncIterator[wrappers_pb2.StringValue]:
        self.calls += 1
        for letter in request.value:
            yield wrappers_pb2.StringValue(value=letter)


@pytest.fixture
async def channel() -> AsyncIterator[tuple[grpc.aio.Channel, _Strings]]:
    strings = _Strings()
    decode = wrappers_pb2.StringValue.FromString
    encode = wrappers_pb2.StringValue.SerializeToString
    handlers = {
        "Upper": grpc.unary_unary_rpc_method_handler(strings.upper, decode, encode),
        "PublicUpper": grpc.unary_unary_rpc_method_handler(strings.upper, decode, encode),
        "Letters": grpc.unary_stream_rpc_method_handler(strings.letters, decode, encode),
    }
    generic = grpc.method_handlers_generic_handler(SERVICE, handlers)
    binding = ServiceBinding(
        name=SERVICE,
        add_to_server=lambda s: s.add_generic_rpc_handlers((generic,)),
        public_methods=frozenset({f"/{SERVICE}/PublicUpper"}),
    )
    server, port = build_server(
        ServerConfig(port=0, drain_delay=0), [binding], tokens=AccessTokens(AUTH), denylist=InMemoryDenyList()
    )
    await server.start()
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield ch, strings
    finally:
        await ch.close(None)
        await server.stop(0, drain=0)


async def _send(ch: grpc.aio.Channel, path: str, data: bytes, md: Any, *, streaming: bool) -> None:
    if streaming:
        call = ch.unary_stream(path, request_serializer=None, response_deserializer=None)
        _ = [m async for m in call(data, metadata=md)]
    else:
        await ch.unary_unary(path, request_serializer=None, response_deserializer=None)(data, metadata=md)


def test_the_garbage_really_does_not_decode() -> None:
    with pytest.raises(DecodeError):
        wrappers_pb2.StringValue.FromString(GARBAGE)


@pytest.mark.parametrize("method", ["Upper", "PublicUpper", "Letters"])
@pytest.mark.parametrize("with_token", [False, True], ids=["no-token", "token"])
async def test_an_undecodable_request_is_invalid_argument(
    channel: tuple[grpc.aio.Channel, _Strings], method: str, with_token: bool
) -> None:
    ch, strings = channel
    md = (("authorization", f"Bearer {AccessTokens(AUTH).issue('acc1').token}"),) if with_token else ()
    path = f"/{SERVICE}/{method}"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _send(ch, path, GARBAGE, md, streaming=method == "Letters")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    details = err.value.details() or ""
    assert "could not be decoded" in details and "google.protobuf.StringValue" in details
    assert "class" not in details and "DecodeError" not in details
    info = error_info(err.value)
    assert info is not None and info.reason == "MALFORMED_REQUEST"
    assert strings.calls == 0  # the handler never saw it


async def test_good_requests_still_decode(channel: tuple[grpc.aio.Channel, _Strings]) -> None:
    ch, _ = channel
    md = (("authorization", f"Bearer {AccessTokens(AUTH).issue('acc1').token}"),)
    upper = ch.unary_unary(
        f"/{SERVICE}/Upper",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )
    assert (await upper(wrappers_pb2.StringValue(value="abc"), metadata=md)).value == "ABC"
