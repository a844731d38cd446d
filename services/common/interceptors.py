"""The server interceptor every Marquee service runs: :class:`PlatformInterceptor`, one interceptor for every
per-RPC concern, in this order (outermost first):

1. request id: takes ``x-request-id`` from the caller (or makes one), returns it in the trailers;
2. observability: maps errors to statuses (the one error model), writes one structured access-log line per RPC
   and records RED metrics, so every outcome is counted exactly once;
3. deadline: refuses RPCs whose deadline has already passed and publishes the deadline so outgoing calls
   (services.common.client) and long handlers can honour it;
4. malformed requests: a request message that does not decode is INVALID_ARGUMENT (MALFORMED_REQUEST), before
   authentication, instead of grpc.aio's UNKNOWN naming the decoder's exception;
5. authentication: verifies the bearer access token on every RPC not listed as public, and refuses revoked ones
   (services.common.denylist).

They are one interceptor, not five, because each grpc.aio interceptor costs a coroutine per call and each
wrapper an async context manager: five of them cost a trivial RPC a third of its throughput (bench/). A unary
call (every hot RPC) runs them as plain code in one coroutine; the streaming shapes share the same steps through
one async context manager.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import Token
from dataclasses import dataclass
from typing import Any

import grpc

from services.common import metrics
from services.common.auth import AccessTokens, authenticate, bearer_token
from services.common.context import (
    Principal,
    access_token_var,
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

Context = grpc.aio.ServicerContext[Any, Any]


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

        async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
            async with enter(request, context) as checked:
                async for item in inner(checked, context):
                    yield item

        return generator

    async def coroutine(request: Any, context: Context) -> None:
        async with enter(request, context) as checked:
            await inner(checked, context)

    return coroutine


def _code_of(context: Context) -> grpc.StatusCode | None:
    try:
        code = context.code()
    except Exception:  # older grpcio: no code() on the aio context
        return None
    return code if isinstance(code, grpc.StatusCode) else None


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


class _Method:
    """What the interceptor keeps per method: its metric series (labelled once, not on every call) and whether it
    is public."""

    def __init__(self, method: str, public: bool) -> None:
        self.method = method
        self.public = public
        self.service, self.name = metrics.split_method(method)
        self.in_flight = metrics.RPC_IN_FLIGHT.labels(self.service, self.name)
        self.latency = metrics.RPC_LATENCY.labels(self.service, self.name)
        self._requests: dict[grpc.StatusCode, Any] = {}

    def requests(self, code: grpc.StatusCode) -> Any:
        counter = self._requests.get(code)
        if counter is None:
            counter = self._requests[code] = metrics.RPC_REQUESTS.labels(self.service, self.name, code.name)
        return counter


class _Call:
    """One RPC going through the interceptor's steps: :meth:`begin` (request id, observability), :meth:`admit`
    (deadline, malformed request, authentication), :meth:`fail` on an error, :meth:`end` always."""

    __slots__ = ("_tokens", "code", "context", "md", "message", "method", "principal", "start")

    def __init__(self, method: _Method, md: Mapping[str, str], context: Context) -> None:
        self.method = method
        self.md = md
        self.context = context
        self.code = grpc.StatusCode.OK
        self.message = ""
        self.principal: Principal | None = None
        rid = new_request_id(md.get("x-request-id"))
        self._tokens: list[tuple[Any, Token[Any]]] = [(request_id_var, request_id_var.set(rid))]
        context.set_trailing_metadata((("x-request-id", rid),))
        method.in_flight.inc()
        self.start = time.perf_counter()

    def _set(self, var: Any, value: Any) -> None:
        self._tokens.append((var, var.set(value)))

    async def admit(self, interceptor: PlatformInterceptor, request: Any = None) -> None:
        remaining = self.context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the call's deadline passed before the server could start it")
        self._set(deadline_var, None if remaining is None else time.monotonic() + remaining)
        if isinstance(request, _Undecodable):
            raise _refuse(request)
        if interceptor.authenticates:
            await self._authenticate(interceptor)

    async def _authenticate(self, interceptor: PlatformInterceptor) -> None:
        principal = token = None
        try:
            token = bearer_token(self.md.get("authorization", ""))
            principal = await authenticate(token, interceptor.tokens, interceptor.denylist)
        except Unauthenticated:
            if not self.method.public:
                raise
        self.principal = principal
        self._set(principal_var, principal)
        self._set(access_token_var, token if principal else None)

    async def fail(self, exc: Exception) -> None:
        """Answers the error with its status (the one error model) and raises grpc's abort; re-raises an abort."""
        context = self.context
        if isinstance(exc, ServiceError):
            self.code, self.message = exc.code, exc.message
            await context.abort_with_status(exc.to_status())  # type: ignore[attr-defined]
        if isinstance(exc, grpc.aio.AbortError):
            self.code = _code_of(context) or grpc.StatusCode.UNKNOWN
            raise exc
        if isinstance(exc, StoreUnavailable):  # an unreachable cluster, a replica lost mid-call: the caller may retry
            unavailable = Unavailable(str(exc), reason="STORE_UNAVAILABLE", retry_after=STORE_RETRY_AFTER)
            self.code, self.message = unavailable.code, unavailable.message
            await context.abort_with_status(unavailable.to_status())  # type: ignore[attr-defined]
        self.code, self.message = grpc.StatusCode.INTERNAL, "internal error"
        log.error("unhandled error in %s", self.method.method, exc_info=exc)
        await context.abort(self.code, f"internal error (request id {request_id_var.get()})")

    def end(self) -> None:
        elapsed = time.perf_counter() - self.start
        method, context = self.method, self.context
        method.in_flight.dec()
        code = self.code
        if code is grpc.StatusCode.OK:
            code = _code_of(context) or code
        method.requests(code).inc()
        method.latency.observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            principal = self.principal
            access_log.info(
                "rpc",
                extra={
                    "method": method.method,
                    "code": code.name,
                    "duration_ms": round(elapsed * 1000, 3),
                    "peer": context.peer(),
                    "account": principal.account_id if principal else None,
                    "profile": principal.profile_id if principal else None,
                    "error": self.message or None,
                },
            )
        for var, token in reversed(self._tokens):
            var.reset(token)


class PlatformInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Request id, error model, access log and metrics, deadline, malformed requests and authentication for every
    RPC of a server (module docstring). ``tokens`` None: no authentication (a server whose every RPC is public).

    On a public RPC a valid token still sets the principal (an invalid or revoked one is ignored there)."""

    def __init__(
        self,
        tokens: AccessTokens | None = None,
        denylist: DenyList | None = None,
        public_methods: frozenset[str] = frozenset(),
    ) -> None:
        if tokens is not None and denylist is None:
            raise ValueError("an authenticating server needs the deny list of revoked access tokens")
        self.tokens: AccessTokens = tokens  # type: ignore[assignment]
        self.denylist: DenyList = denylist  # type: ignore[assignment]
        self.authenticates = tokens is not None
        self._public = public_methods
        self._methods: dict[str, _Method] = {}

    def is_public(self, method: str) -> bool:
        return method in self._public or method.startswith(ALWAYS_PUBLIC_PREFIXES)

    def _method(self, name: str) -> _Method:
        method = self._methods.get(name)
        if method is None:
            method = self._methods[name] = _Method(name, self.is_public(name))
        return method

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler: Any = await continuation(handler_call_details)
        if handler is None:  # no such method: grpc answers UNIMPLEMENTED
            return None  # type: ignore[return-value]
        name = handler_call_details.method
        method = self._method(name)
        md = _metadata(handler_call_details)
        changes: dict[str, Any] = {}
        if handler.request_deserializer is not None:
            changes["request_deserializer"] = _safe_deserializer(handler.request_deserializer, name)
        if handler.unary_unary is not None:
            changes["unary_unary"] = self._unary_unary(handler.unary_unary, method, md)
        elif handler.stream_unary is not None:
            changes["stream_unary"] = self._stream_unary(handler.stream_unary, method, md)
        elif handler.unary_stream is not None:
            changes["unary_stream"] = wrap_stream(handler.unary_stream, self._around(method, md, streamed=False))
        else:
            changes["stream_stream"] = wrap_stream(handler.stream_stream, self._around(method, md, streamed=True))
        return handler._replace(**changes)  # type: ignore[no-any-return]

    def _unary_unary(self, inner: Any, method: _Method, md: Mapping[str, str]) -> Any:
        async def unary_unary(request: Any, context: Context) -> Any:
            call = _Call(method, md, context)
            try:
                await call.admit(self, request)
                return await inner(request, context)
            except Exception as exc:
                await call.fail(exc)
                raise
            finally:
                call.end()

        return unary_unary

    def _stream_unary(self, inner: Any, method: _Method, md: Mapping[str, str]) -> Any:
        async def stream_unary(requests: Any, context: Context) -> Any:
            call = _Call(method, md, context)
            try:
                await call.admit(self)
                return await inner(_checked_stream(requests), context)
            except Exception as exc:
                await call.fail(exc)
                raise
            finally:
                call.end()

        return stream_unary

    def _around(
        self, method: _Method, md: Mapping[str, str], *, streamed: bool
    ) -> Callable[[Any, Context], AbstractAsyncContextManager[Any]]:
        """The steps around a streaming-response handler: yields the request (or the checked request stream)."""

        @asynccontextmanager
        async def around(request: Any, context: Context) -> AsyncIterator[Any]:
            call = _Call(method, md, context)
            try:
                if streamed:
                    await call.admit(self)
                    yield _checked_stream(request)
                else:
                    await call.admit(self, request)
                    yield request
            except Exception as exc:
                await call.fail(exc)
                raise
            finally:
                call.end()

        return around
