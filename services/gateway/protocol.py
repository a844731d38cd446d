"""The gRPC-web wire format (grpc/grpc doc/PROTOCOL-WEB.md), without any I/O: content types, length-prefixed
frames, the text mode's base64 (incremental, chunks may carry their own padding), ``grpc-timeout``, trailer
blocks, ``grpc-message`` percent-encoding and per-message gzip.

Every malformed input raises :class:`ProtocolError` carrying the gRPC status to answer with, never anything else.
"""

from __future__ import annotations

import binascii
import math
import re
import struct
import zlib
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

import grpc

FRAME_HEADER_BYTES = 5
FLAG_COMPRESSED = 0x01
FLAG_TRAILERS = 0x80

CONTENT_TYPE_BINARY = "application/grpc-web"
CONTENT_TYPE_TEXT = "application/grpc-web-text"
SUPPORTED_CODECS = ("proto",)
# grpc-encoding values the gateway decompresses; responses are always sent uncompressed ("identity")
SUPPORTED_ENCODINGS = ("identity", "gzip")


class ProtocolError(Exception):
    """The request breaks the protocol or a limit; ``code`` is the gRPC status to answer with, ``reason`` what
    the gateway's metrics count it as (by default: too_large for RESOURCE_EXHAUSTED, else malformed)."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or ("too_large" if code == grpc.StatusCode.RESOURCE_EXHAUSTED else "malformed")


class Mode(Enum):
    BINARY = "binary"
    TEXT = "text"  # base64 request and response bodies


@dataclass(frozen=True)
class ContentType:
    mode: Mode
    codec: str  # "proto"
    value: str  # as the response echoes it, e.g. "application/grpc-web-text+proto"


class UnsupportedMediaType(Exception):
    """Not a gRPC-web request at all (HTTP 415), or a gRPC-web codec the gateway does not speak."""


def parse_content_type(header: str | None) -> ContentType:
    """``application/grpc-web[+proto]`` or ``application/grpc-web-text[+proto]`` (parameters ignored)."""
    value = (header or "").split(";", 1)[0].strip().lower()
    for base, mode in ((CONTENT_TYPE_TEXT, Mode.TEXT), (CONTENT_TYPE_BINARY, Mode.BINARY)):
        if value == base:
            return ContentType(mode, "proto", value)
        if value.startswith(base + "+"):
            codec = value[len(base) + 1 :]
            if codec not in SUPPORTED_CODECS:
                supported = ", ".join(SUPPORTED_CODECS)
                raise UnsupportedMediaType(f"gRPC-web codec {codec[:32]!r} is not supported (only {supported})")
            return ContentType(mode, codec, value)
    raise UnsupportedMediaType(
        f"content-type {value[:64]!r} is not gRPC-web: "
        f"send {CONTENT_TYPE_BINARY}[+proto] or {CONTENT_TYPE_TEXT}[+proto]"
    )


def frame(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


@dataclass(frozen=True)
class Frame:
    flags: int
    payload: bytes

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)


class FrameReader:
    """Splits a byte stream into length-prefixed frames as bytes arrive.

    A frame declaring more than ``max_message_bytes`` is refused from its prefix, before its payload is buffered.
    Request bodies never carry trailers, so a trailers frame (or any unknown flag) is a protocol error."""

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._need: int | None = None  # payload length of the frame whose prefix was read
        self._flags = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            if self._need is None:
                if len(self._buffer) < FRAME_HEADER_BYTES:
                    return frames
                flags, length = struct.unpack_from(">BI", self._buffer)
                if flags & ~FLAG_COMPRESSED:
                    kind = "a trailers frame" if flags & FLAG_TRAILERS else f"unknown frame flags 0x{flags:02x}"
                    raise ProtocolError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {kind} in the request body"
                    )
                if length > self._max:
                    raise ProtocolError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"request message of {length} bytes is larger than the limit of {self._max} bytes",
                    )
                del self._buffer[:FRAME_HEADER_BYTES]
                self._need, self._flags = length, flags
            if len(self._buffer) < self._need:
                return frames
            frames.append(Frame(self._flags, bytes(self._buffer[: self._need])))
            del self._buffer[: self._need]
            self._need = None

    def finish(self) -> None:
        """The body ended: anything left is a truncated frame."""
        if self._need is not None:
            raise ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed request: the body ended inside a frame ({len(self._buffer)} of {self._need} bytes)",
            )
        if self._buffer:
            raise ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed request: the body ended inside a frame prefix ({len(self._buffer)} of 5 bytes)",
            )


class Base64Decoder:
    """Incremental standard base64 for grpc-web-text bodies. The body may be several base64 chunks one after
    another, each with its own padding (``AAA=AAAA``), split anywhere by the transport."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        text = self._pending + data
        usable = len(text) - len(text) % 4
        self._pending = text[usable:]
        return _decode_quanta(text[:usable])

    def finish(self) -> None:
        if self._pending:
            raise ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed request: the base64 body ends with {len(self._pending)} characters of an incomplete group",
            )


def _decode_quanta(text: bytes) -> bytes:
    """Decode whole 4-character groups; a group with padding ends one chunk and the next may start after it."""
    out = bytearray()
    start = 0
    while start < len(text):
        pad = text.find(b"=", start)
        end = len(text) if pad < 0 else start + ((pad - start) // 4 + 1) * 4
        try:
            out += binascii.a2b_base64(text[start:end], strict_mode=True)
        except binascii.Error:
            raise ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT, "malformed request: the grpc-web-text body is not valid base64"
            ) from None
        start = end
    return bytes(out)


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """Decompress one gzip message, refusing output beyond ``max_bytes`` (no decompression bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error:
        raise ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT, "malformed request: a message is not valid gzip"
        ) from None
    if len(out) > max_bytes:
        raise ProtocolError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"request message is larger than the limit of {max_bytes} bytes once decompressed",
        )
    if not inflater.eof:
        raise ProtocolError(grpc.StatusCode.INVALID_ARGUMENT, "malformed request: a gzip message is truncated")
    return out


_TIMEOUT_RE = re.compile(r"^([0-9]{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def parse_timeout(value: str) -> float:
    """``grpc-timeout`` (at most 8 digits and a unit: H M S m u n) in seconds."""
    match = _TIMEOUT_RE.match(value.strip())
    if match is None:
        raise ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"grpc-timeout {value[:32]!r} is not 1-8 digits followed by one of H, M, S, m, u, n",
        )
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


# grpc core sends a call's timeout rounded up to 1 ms below 1 s, 10 ms below 10 s, 100 ms below 100 s, 1 s below
# 1000 s, ... (src/core/lib/transport/timeout_encoding.cc): (limit, step) in milliseconds
_GRPC_CORE_TIMEOUT_STEPS = (
    (1_000, 1),
    (10_000, 10),
    (100_000, 100),
    (1_000_000, 1_000),
    (10_000_000, 10_000),
    (100_000_000, 100_000),
)


def backend_timeout(seconds: float) -> float:
    """The timeout to give a grpc.aio call so that the deadline its backend sees is not later than ``seconds``
    from now: grpc core rounds the ``grpc-timeout`` it sends up to a coarser step, so round down to that step
    first (0 when less than a millisecond is left). A microsecond less keeps float noise from crossing a step."""
    millis = seconds * 1000
    step = next((s for limit, s in _GRPC_CORE_TIMEOUT_STEPS if millis < limit), 3_600_000)
    floored = math.floor(millis / step) * step
    return max(floored / 1000 - 1e-6, 0.0)


def encode_timeout(seconds: float) -> str:
    """The shortest exact-enough ``grpc-timeout`` for a duration (used by tests and clients)."""
    for unit, scale in (("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("S", 1.0), ("M", 60.0), ("H", 3600.0)):
        value = round(seconds / scale)
        if value < 100_000_000:
            return f"{max(value, 0)}{unit}"
    return "99999999H"


def encode_grpc_message(text: str) -> str:
    """Percent-encode a status message as gRPC requires (printable ASCII except '%' stays as is)."""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in text.encode("utf-8"))


def decode_grpc_message(text: str) -> str:
    return unquote(text, errors="replace")


def trailers_block(pairs: list[tuple[str, str]]) -> bytes:
    """Trailers as the body's final frame carries them: HTTP/1 header lines, lower-case names."""
    return "".join(f"{name.lower()}: {value}\r\n" for name, value in pairs).encode("ascii")


def parse_trailers_block(block: bytes) -> list[tuple[str, str]]:
    pairs = []
    for line in block.decode("ascii").split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            pairs.append((name.strip().lower(), value.strip()))
    return pairs
