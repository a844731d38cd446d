"""Server interceptors every Marquee service runs, outermost first:

1. :class:`RequestIdInterceptor`: takes ``x-request-id`` from the caller (or makes one), returns it.
2. :class:`ObservabilityInterceptor`: maps errors to statuses (the one error model), writes one structured
   access-log line per RPC and records RED metrics.
3. :class:`DeadlineInterceptor`: refuses RPCs whose deadline has already passed and publishes the deadline
   so outgoing calls (services.common.client) and long handlers can honour it.
4. :class:`AuthInterceptor`: verifies the bearer access token on every RPC not listed as public.

Each wraps the method handler's behaviour in an async context manager, for all four RPC shapes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import grpc

from services.common import metrics
from services.common.auth import AccessTokens
from services.common.context import (
    access_token_var,
    deadline_var,
    new_request_id,
    principal_var,
    request_id_var,
)
from services.common.errors import DeadlineExceeded, ServiceError, Unauthenticated

access_log = logging.getLogger("marquee.access")
log = logging.getLogger("marquee.server")

# Methods of the standard services that are always public (health checks, reflection).
ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

Around = Callable[[str, Mapping[str, str], grpc.aio.ServicerContext[Any, Any]], AbstractAsyncContextManager[None]]


def _metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in details.invocation_metadata or ():
        key, value = item[0], item[1]
        if isinstance(value, str):
            out[key] = value
    return out


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], method: str, md: Mapping[str, str], around: Around) -> Any:
    """A copy of ``handler`` whose behaviour runs inside ``around(method, metadata, context)``."""
    h: Any = handler
    if h.unary_unary is not None:
        inner_uu = h.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with around(method, md, context):
                return await inner_uu(request, context)

        return h._replace(unary_unary=unary_unary)
    if h.stream_unary is not None:
        inner_su = h.stream_unary

        async def stream_unary(request_iter: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with around(method, md, context):
                return await inner_su(request_iter, context)

        return h._replace(stream_unary=stream_unary)
    if h.unary_stream is not None:
        inner_us = h.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with around(method, md, context):
                async for item in inner_us(request, context):
                    yield item

        return h._replace(unary_stream=unary_stream)
    inner_ss = h.stream_stream

    async def stream_stream(request_iter: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async with around(method, md, context):
            async for item in inner_ss(request_iter, context):
                yield item

    return h._replace(stream_stream=stream_stream)


class _AroundInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Base: subclasses implement ``around``; ``applies`` can skip methods cheaply."""

    def applies(self, method: str) -> bool:
        return True

    def around(
        self, method: str, md: Mapping[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self.applies(method):
            return handler
        return _wrap(handler, method, _metadata(handler_call_details), self.around)  # type: ignore[no-any-return]


class RequestIdInterceptor(_AroundInterceptor):
    @asynccontextmanager
    async def around(
        self, method: str, md: Mapping[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        rid = new_request_id(md.get("x-request-id"))
        token = request_id_var.set(rid)
        try:
            context.set_trailing_metadata((("x-request-id", rid),))
            yield
        finally:
            request_id_var.reset(token)


class ObservabilityInterceptor(_AroundInterceptor):
    """Error mapping, access log and RED metrics in one place, so every outcome is counted exactly once."""

    @asynccontextmanager
    async def around(
        self, method: str, md: Mapping[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        service, name = metrics.split_method(method)
        in_flight = metrics.RPC_IN_FLIGHT.labels(service, name)
        in_flight.inc()
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        message = ""
        try:
            yield
        except ServiceError as err:
            code, message = err.code, err.message
            await context.abort_with_status(err.to_status())  # type: ignore[attr-defined]
        except grpc.aio.AbortError:
            code = _code_of(context) or grpc.StatusCode.UNKNOWN
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            message = "internal error"
            log.exception("unhandled error in %s", method)
            await context.abort(code, f"internal error (request id {request_id_var.get()})")
        finally:
            elapsed = time.perf_counter() - start
            in_flight.dec()
            set_code = _code_of(context)
            if code is grpc.StatusCode.OK and set_code is not None:
                code = set_code
            metrics.RPC_REQUESTS.labels(service, name, code.name).inc()
            metrics.RPC_LATENCY.labels(service, name).observe(elapsed)
            principal = principal_var.get()
            access_log.info(
                "rpc",
                extra={
                    "method": method,
                    "code": code.name,
                    "duration_ms": round(elapsed * 1000, 3),
                    "peer": context.peer(),
                    "account": principal.account_id if principal else None,
                    "error": message or None,
                },
            )


def _code_of(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode | None:
    try:
        code = context.code()
    except Exception:  # older grpcio: no code() on the aio context
        return None
    return code if isinstance(code, grpc.StatusCode) else None


class DeadlineInterceptor(_AroundInterceptor):
    @asynccontextmanager
    async def around(
        self, method: str, md: Mapping[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the call's deadline passed before the server could start it")
        token = deadline_var.set(None if remaining is None else time.monotonic() + remaining)
        try:
            yield
        finally:
            deadline_var.reset(token)


class AuthInterceptor(_AroundInterceptor):
    """Verifies ``authorization: Bearer <jwt>`` on every RPC except the public ones.

    On a public RPC a valid token still sets the principal (an invalid one is ignored there)."""

    def __init__(self, tokens: AccessTokens, public_methods: frozenset[str]) -> None:
        self._tokens = tokens
        self._public = public_methods

    def is_public(self, method: str) -> bool:
        return method in self._public or method.startswith(ALWAYS_PUBLIC_PREFIXES)

    @asynccontextmanager
    async def around(
        self, method: str, md: Mapping[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        raw = md.get("authorization", "")
        scheme, _, token = raw.partition(" ")
        principal = None
        if self.is_public(method):
            if scheme.lower() == "bearer" and token:
                try:
                    principal = self._tokens.verify(token.strip())
                except Unauthenticated:
                    principal = None
        else:
            if not raw:
                raise Unauthenticated("missing access token: send 'authorization: Bearer <token>'")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
            principal = self._tokens.verify(token.strip())
        p_token = principal_var.set(principal)
        t_token = access_token_var.set(token.strip() if principal else None)
        try:
            yield
        finally:
            principal_var.reset(p_token)
            access_token_var.reset(t_token)
