"""HTTP headers <-> gRPC metadata at the gateway.

Requests: every header a backend may care about (``authorization``, ``x-request-id``, custom metadata) goes
through; hop-by-hop headers, HTTP framing, the protocol's own ``grpc-*`` headers (``grpc-timeout`` becomes the
backend deadline), the browser's own headers (cookies, origin, ``sec-*``) stay at the gateway. The client's
address travels as ``x-forwarded-for``. ``-bin`` headers are base64 on HTTP and bytes in gRPC metadata.

Responses: the backend's initial metadata become HTTP headers, its trailing metadata the trailers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

import grpc
from multidict import CIMultiDictProxy

from services.gateway.protocol import ProtocolError

MetadataValue = str | bytes
Metadata = list[tuple[str, MetadataValue]]

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer"}
    | {"transfer-encoding", "upgrade"}
)
NOT_FORWARDED = HOP_BY_HOP | frozenset(
    {"host", "content-length", "content-type", "content-encoding", "accept", "accept-encoding", "expect"}
    | {"user-agent", "cookie", "origin", "referer", "forwarded", "x-forwarded-for", "x-real-ip", "priority"}
)
NOT_FORWARDED_PREFIXES = ("grpc-", "sec-", "access-control-", ":")
# what a backend's metadata may not set on the HTTP response (the gateway owns these)
NOT_RETURNED = HOP_BY_HOP | frozenset(
    {"content-type", "content-length", "content-encoding", "grpc-status", "grpc-message", "date", "server"}
)

_KEY_RE = re.compile(r"^[0-9a-z_.-]+$")
_ASCII_VALUE_RE = re.compile(r"^[\x20-\x7e]*$")


def request_metadata(headers: CIMultiDictProxy[str], peer: str, forwarded_for: str | None) -> Metadata:
    """The metadata to send to the backend for these request headers. ``peer`` is the transport peer's address;
    ``forwarded_for`` the incoming ``x-forwarded-for`` when the gateway trusts it (it sits behind a proxy of its
    own), else None: the backend gets the chain with the peer appended, as a proxy does."""
    connection_listed = {part.strip().lower() for line in headers.getall("connection", []) for part in line.split(",")}
    out: Metadata = []
    for raw_key, value in headers.items():
        key = raw_key.lower()
        if key in NOT_FORWARDED or key in connection_listed or key.startswith(NOT_FORWARDED_PREFIXES):
            continue
        if not _KEY_RE.match(key):
            raise ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT, f"header name {key[:64]!r} is not valid gRPC metadata"
            )
        if key.endswith("-bin"):
            out.extend((key, decode_binary(key, part)) for part in value.split(","))
        elif not _ASCII_VALUE_RE.match(value):
            raise ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT, f"header {key!r} has characters outside printable ASCII"
            )
        else:
            out.append((key, value))
    chain = f"{forwarded_for}, {peer}" if forwarded_for else peer
    out.append(("x-forwarded-for", chain))
    return out


def decode_binary(key: str, value: str) -> bytes:
    text = value.strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(grpc.StatusCode.INVALID_ARGUMENT, f"header {key!r} is not valid base64") from None


def encode_binary(value: bytes) -> str:
    """Unpadded standard base64, as gRPC emits binary metadata."""
    return base64.b64encode(value).decode("ascii").rstrip("=")


def http_pairs(metadata: Iterable[tuple[str, MetadataValue]] | None) -> list[tuple[str, str]]:
    """Backend metadata as HTTP header (or trailer) lines."""
    out: list[tuple[str, str]] = []
    for key, value in metadata or ():
        name = key.lower()
        if name in NOT_RETURNED:
            continue
        if isinstance(value, bytes):
            out.append((name, encode_binary(value)))
        elif _ASCII_VALUE_RE.match(value):
            out.append((name, value))
    return out
