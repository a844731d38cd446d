"""Who is on the other end of an RPC: the client's address."""

from __future__ import annotations

from typing import Any

import grpc


def client_address(context: grpc.aio.ServicerContext[Any, Any], trust_forwarded_for: bool) -> str:
    """The caller's IP: x-forwarded-for's first hop behind a trusted gateway, else the transport peer."""
    if trust_forwarded_for:
        for key, value in context.invocation_metadata() or ():
            if key == "x-forwarded-for" and isinstance(value, str) and value.strip():
                return value.split(",")[0].strip()[:64]
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1 : rest.index("]")] if "]" in rest else rest
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer[:64]
