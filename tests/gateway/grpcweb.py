"""A small gRPC-web client for the tests, written from the protocol text independently of the gateway's code:
it frames requests (binary or base64 text, optionally split into separately padded chunks) and parses every
answer into messages, trailers and status, whether trailers-only or ending in a trailers frame."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import aiohttp
import grpc
from google.rpc import status_pb2

BINARY = "application/grpc-web+proto"
TEXT = "application/grpc-web-text"


def frame(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def frames(messages: Sequence[bytes]) -> bytes:
    return b"".join(frame(m) for m in messages)


def b64_chunks(body: bytes, pieces: int) -> list[bytes]:
    """``body`` as ``pieces`` base64 strings, each padded on its own (what a streaming text client sends)."""
    size = max(1, -(-len(body) // pieces))
    return [base64.b64encode(body[i : i + size]) for i in range(0, len(body), size)] or [b""]


def decode_text(body: bytes) -> bytes:
    """Concatenated, separately padded base64 chunks: every 4-character group decodes on its own."""
    return b"".join(base64.b64decode(body[i : i + 4]) for i in range(0, len(body), 4))


@dataclass
class Reply:
    http_status: int
    headers: dict[str, list[str]]
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, list[str]] = field(default_factory=dict)
    trailers_only: bool = False
    trailer_frame: bytes | None = None  # the raw trailers block, when the body ended with one
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def trailer(self, name: str) -> str | None:
        values = self.trailers.get(name.lower())
        return values[0] if values else None

    @property
    def code(self) -> grpc.StatusCode:
        value = self.trailer("grpc-status")
        assert value is not None, f"no grpc-status in {self}"
        return next(c for c in grpc.StatusCode if c.value[0] == int(value))

    @property
    def message(self) -> str:
        return unquote(self.trailer("grpc-message") or "")

    def status_details(self) -> status_pb2.Status | None:
        raw = self.trailer("grpc-status-details-bin")
        if raw is None:
            return None
        return status_pb2.Status.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))


def parse(http_status: int, headers: dict[str, list[str]], body: bytes, text: bool) -> Reply:
    reply = Reply(http_status, headers, body=body)
    data = decode_text(body) if text else body
    offset = 0
    while offset < len(data):
        flags, length = struct.unpack_from(">BI", data, offset)
        payload = data[offset + 5 : offset + 5 + length]
        assert len(payload) == length, f"truncated frame in the response: {data!r}"
        offset += 5 + length
        if flags & 0x80:
            assert offset == len(data), "the trailers frame must be the last"
            reply.trailer_frame = payload
            for line in payload.decode("ascii").split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    assert name == name.lower(), f"trailer names are lower case: {name}"
                    reply.trailers.setdefault(name.strip(), []).append(value.strip())
        else:
            assert flags == 0, f"unexpected response frame flags {flags}"
            assert reply.trailer_frame is None
            reply.messages.append(payload)
    if reply.trailer_frame is None and "grpc-status" in headers:
        reply.trailers_only = True
        reply.trailers = headers
    return reply


def _headers(response: aiohttp.ClientResponse) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in response.headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


async def call(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    messages: Sequence[bytes] = (),
    *,
    text: bool = False,
    chunks: int = 1,
    body: bytes | None = None,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST one gRPC-web request. ``body`` replaces the framed ``messages``; ``chunks`` > 1 sends a text body as
    that many separately padded base64 strings, each in its own HTTP chunk."""
    raw = body if body is not None else frames(messages)
    data: bytes | AsyncIterator[bytes]
    if text and body is None:
        parts = b64_chunks(raw, chunks)

        async def stream() -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        data = stream() if chunks > 1 else parts[0]
    else:
        data = raw
    sent = {"content-type": content_type or (TEXT if text else BINARY), "x-grpc-web": "1", **(headers or {})}
    async with session.post(url + path, data=data, headers=sent) as response:
        received = await response.read()
        return parse(response.status, _headers(response), received, text)
