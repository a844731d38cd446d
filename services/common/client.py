"""Outgoing gRPC calls from one service to another, carrying the current RPC's context along.

:func:`connect` returns a grpc.aio channel whose calls inherit the caller's remaining deadline (never more
than what is left of the incoming RPC's), its request id, and its access token (so the callee authorises the
same principal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

from services.common.context import access_token_var, request_id_var, time_remaining
from services.common.targets import channel_target

DEFAULT_TIMEOUT = 5.0


def _outgoing(details: Any) -> Any:
    remaining = time_remaining()
    timeout = details.timeout
    if remaining is not None:
        timeout = max(0.0, remaining) if timeout is None else min(timeout, max(0.0, remaining))
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    metadata = list(details.metadata or ())
    keys = {m[0] for m in metadata}
    rid = request_id_var.get()
    if rid != "-" and "x-request-id" not in keys:
        metadata.append(("x-request-id", rid))
    token = access_token_var.get()
    if token and "authorization" not in keys:
        metadata.append(("authorization", f"Bearer {token}"))
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=timeout,
        metadata=grpc.aio.Metadata(*metadata),
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _Propagate(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_outgoing(details), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_outgoing(details), request)

    async def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, it: Any) -> Any:
        return await continuation(_outgoing(details), it)

    async def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, it: Any) -> Any:
        return await continuation(_outgoing(details), it)


def connect(address: str, *, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """An insecure channel to ``address`` (one replica, or several: see services.common.targets) that propagates
    deadline, request id and token."""
    target, balanced = channel_target(address)
    return grpc.aio.insecure_channel(target, options=[*balanced, *options], interceptors=[_Propagate()])  # type: ignore[list-item]
