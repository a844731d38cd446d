"""Who is on the other end of an RPC: the client's address."""

from __future__ import annotations

from typing import Any

import grpc

from services.common.geo import Geo

# The secrets of this process's native fronts (services.playback.ingest): a call they forward carries the
# client's address in PEER_HEADER beside one of them in SECRET_HEADER, and only then is the address believed.
PEER_HEADER = "x-marquee-peer"
SECRET_HEADER = "x-marquee-front"
_fronts: set[str] = set()


def trust_front(secret: str) -> None:
    _fronts.add(secret)


def distrust_front(secret: str) -> None:
    _fronts.discard(secret)


def transport_peer(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The IP of the connection's other end (the gateway, for a browser's call), as the native front saw it
    when it forwarded the call."""
    if _fronts:
        forwarded = dict(context.invocation_metadata() or ())
        if forwarded.get(SECRET_HEADER) in _fronts and isinstance(address := forwarded.get(PEER_HEADER), str):
            return address[:64]
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1 : rest.index("]")] if "]" in rest else rest
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer[:64]


def caller_address(context: grpc.aio.ServicerContext[Any, Any], geo: Geo) -> str:
    """The caller's IP, believing x-forwarded-for only from the configured trusted proxies (see geo.py)."""
    chain = [v for k, v in context.invocation_metadata() or () if k == "x-forwarded-for" and isinstance(v, str)]
    return geo.client_address(transport_peer(context), ", ".join(chain) or None)
