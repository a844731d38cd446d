"""Server interceptors every Marquee service runs, outermost first:

1. :class:`RequestIdInterceptor`: takes ``x-request-id`` from the caller (or makes one), returns it.
2. :class:`ObservabilityInterceptor`: maps errors to statuses (the one error model), writes one structured
   access-log line per RPC and records RED metrics.
3. :class:`DeadlineInterceptor`: refuses RPCs whose deadline has already passed and publishes the deadline
   so outgoing calls (services.common.client) and long handlers can honour it.
4. :class:`MalformedRequestInterceptor`: a request message that does not decode is INVALID_ARGUMENT
   (MALFORMED_REQUEST), before authentication, instead of grpc.aio's UNKNOWN naming the decoder's exception.
5. :class:`AuthInterceptor`: verifies the bearer access token on every RPC not listed as public, and refuses
   revoked ones (services.common.denylist).

Each wraps the method handler's behaviour in an async context manager, for all four RPC shapes (the malformed
request check wraps the request deserializer as well).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from services.common import metrics
from services.common.auth import AccessTokens, authenticate, bearer_token
from services.common.context import (
    CallRecord,
    access_token_var,
    call_record_var,
    deadline_var,
    new_request_id,
    principal_var,
    request_id_var,
)
from services.common.denylist import DenyList
from services.common.errors import DeadlineExceeded, InvalidArgument, ServiceError, Unauthenticated, Unavailable
from services.common.store.port import StoreUnavailable

access_log = logging.getLogger("marquee.access")
log = logging.getLogger("marquee.server")

# Methods of the standard services that are always public (health checks, reflection).
ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
STORE_RETRY_AFTER = 1.0  # seconds a caller is told to wait when the store is unavailable (RetryInfo)

Around = Callable[[str, Mapping[str, str], grpc.aio.ServicerContext[Any, Any]], AbstractAsyncContextManager[None]]


def _metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in details.invocation_metadata or ():
        key, value = item[0], item[1]
        if isinstance(value, str):
            out[key] = value
    return out


def wrap_stream(inner: Any, enter: Callable[[Any, Any], AbstractAsyncContextManager[Any]]) -> Any:
    """A streaming-response handler that runs ``inner`` inside ``enter(request, context)`` (which yields the request
    ``inner`` gets), of the same kind as ``inner``: an async generator for a generator handler (grpc sends what it
    yields, and headers sent before an empty stream still go out), a coroutine for a handler that writes its
    responses itself (grpc.health.v1's Watch does: wrapping it as a generator broke Watch, and with it gRPC
    clients' health checking, on every server)."""
    if inspect.isasyncgenfunction(inner):

        async def generator(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with enter(request, context) as checked:
                async for item in inner(checked, context):
                    yield item

        return generator

    async def coroutine(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        async with enter(request, context) as checked:
            await inner(checked, context)

    return coroutine


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

    @asynccontextmanager
    async def enter(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async with around(method, md, context):
            yield request

    if h.unary_stream is not None:
        return h._replace(unary_stream=wrap_stream(h.unary_stream, enter))
    return h._replace(stream_stream=wrap_stream(h.stream_stream, enter))


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
        record = CallRecord()
        record_token = call_record_var.set(record)
        try:
            yield
        except ServiceError as err:
            code, message = err.code, err.message
            await context.abort_with_status(err.to_status())  # type: ignore[attr-defined]
        except grpc.aio.AbortError:
            code = _code_of(context) or grpc.StatusCode.UNKNOWN
            raise
        except StoreUnavailable as exc:  # an unreachable cluster, a replica lost mid-call: the caller may retry
            unavailable = Unavailable(str(exc), reason="STORE_UNAVAILABLE", retry_after=STORE_RETRY_AFTER)
            code, message = unavailable.code, unavailable.message
            await context.abort_with_status(unavailable.to_status())  # type: ignore[attr-defined]
        except Exception:
            code = grpc.StatusCode.INTERNAL
            message = "internal error"
            log.exception("unhandled error in %s", method)
            await context.abort(code, f"internal error (request id {request_id_var.get()})")
        finally:
            call_record_var.reset(record_token)
            elapsed = time.perf_counter() - start
            in_flight.dec()
            set_code = _code_of(context)
            if code is grpc.StatusCode.OK and set_code is not None:
                code = set_code
            metrics.RPC_REQUESTS.labels(service, name, code.name).inc()
            metrics.RPC_LATENCY.labels(service, name).observe(elapsed)
            principal = record.principal
            access_log.info(
                "rpc",
                extra={
                    "method": method,
                    "code": code.name,
                    "duration_ms": round(elapsed * 1000, 3),
                    "peer": context.peer(),
                    "account": principal.account_id if principal else None,
                    "profile": principal.profile_id if principal else None,
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


@dataclass(frozen=True)
class _Undecodable:
    """What the wrapped deserializer hands on in place of a request message that did not decode."""

    message_type: str


def _safe_deserializer(deserialize: Callable[[bytes], Any], method: str) -> Callable[[bytes], Any]:
    descriptor = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None) or f"{method} request"

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:  # DecodeError, and whatever else a decoder raises on hostile bytes
            return _Undecodable(name)

    return safe


def _refuse(request: _Undecodable) -> InvalidArgument:
    return InvalidArgument(
        f"the request is not a valid {request.message_type} message: it could not be decoded",
        reason="MALFORMED_REQUEST",
    )


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            raise _refuse(request)
        yield request


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """grpc.aio decodes a request before any handler code runs and answers UNKNOWN ("Unexpected <class
    'google.protobuf.message.DecodeError'>") when it cannot. This wraps every handler's request deserializer so a
    bad message becomes a marker, and the handler's behaviour so the marker becomes INVALID_ARGUMENT (reason
    MALFORMED_REQUEST) before authentication or the servicer sees it. Streamed requests are checked one by one."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler: Any = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler  # type: ignore[no-any-return]
        safe = _safe_deserializer(handler.request_deserializer, handler_call_details.method)
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                if isinstance(request, _Undecodable):
                    raise _refuse(request)
                return await inner_uu(request, context)

            return handler._replace(request_deserializer=safe, unary_unary=unary_unary)  # type: ignore[no-any-return]
        if handler.unary_stream is not None:

            @asynccontextmanager
            async def checked(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                if isinstance(request, _Undecodable):
                    raise _refuse(request)
                yield request

            unary_stream = wrap_stream(handler.unary_stream, checked)
            return handler._replace(request_deserializer=safe, unary_stream=unary_stream)  # type: ignore[no-any-return]
        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                return await inner_su(_checked_stream(requests), context)

            return handler._replace(request_deserializer=safe, stream_unary=stream_unary)  # type: ignore[no-any-return]

        @asynccontextmanager
        async def checked_stream(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            yield _checked_stream(requests)

        stream_stream = wrap_stream(handler.stream_stream, checked_stream)
        return handler._replace(request_deserializer=safe, stream_stream=stream_stream)  # type: ignore[no-any-return]


class AuthInterceptor(_AroundInterceptor):
    """Verifies ``authorization: Bearer <jwt>`` on every RPC except the public ones, and refuses tokens the deny
    list says were revoked (UNAUTHENTICATED, reason TOKEN_REVOKED).

    On a public RPC a valid token still sets the principal (an invalid or revoked one is ignored there)."""

    def __init__(self, tokens: AccessTokens, denylist: DenyList, public_methods: frozenset[str]) -> None:
        self._tokens = tokens
        self._denylist = denylist
        self._public = public_methods

    def is_public(self, method: str) -> bool:
        return method in self._public or method.startswith(ALWAYS_PUBLIC_PREFIXES)

    @asynccontextmanager
    async def around(
        self, method: str, md: Mapping[str, str], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        principal = token = None
        try:
            token = bearer_token(md.get("authorization", ""))
            principal = await authenticate(token, self._tokens, self._denylist)
        except Unauthenticated:
            if not self.is_public(method):
                raise
        record = call_record_var.get()
        if record is not None:
            record.principal = principal
        p_token = principal_var.set(principal)
        t_token = access_token_var.set(token if principal else None)
        try:
            yield
        finally:
            principal_var.reset(p_token)
            access_token_var.reset(t_token)
