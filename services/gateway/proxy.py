"""The gRPC-web proxy: one aiohttp handler turns a gRPC-web request into a call on the backend's grpc.aio
channel, and the call's headers, messages and status back into a gRPC-web response.

Bytes are never decoded into messages: request frames are unwrapped (base64 and gzip undone) and handed to the
backend as they are; the backend's messages are framed back as they arrive, so server streams stream.

- Answers the gateway gives itself (bad input, limits, no route) are trailers-only: HTTP 200 with
  ``grpc-status`` in the headers and no body. Non-gRPC-web content types get HTTP 415.
- A backend answer with messages or headers is headers, data frames, then the trailers frame (flag 0x80);
  one without either is trailers-only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from services.common.context import new_request_id
from services.common.errors import ResourceExhausted
from services.common.geo import ForwardedFor
from services.common.ratelimit import Rate, RateLimiter, RateLimiterUnavailable
from services.gateway import metrics
from services.gateway.config import LimitsConfig
from services.gateway.cors import Cors
from services.gateway.metadata import Metadata, MetadataValue, http_pairs, request_metadata
from services.gateway.protocol import (
    SUPPORTED_ENCODINGS,
    Base64Decoder,
    ContentType,
    Frame,
    FrameReader,
    Mode,
    ProtocolError,
    UnsupportedMediaType,
    backend_timeout,
    encode_grpc_message,
    frame,
    gunzip,
    parse_content_type,
    parse_timeout,
    trailers_block,
)
from services.gateway.routes import Route, Routes

log = logging.getLogger("marquee.gateway")
access_log = logging.getLogger("marquee.access")

ACCEPT_ENCODING = ",".join(SUPPORTED_ENCODINGS)
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # the end of a response stream (missing from grpc-stubs)


@dataclass
class _Outcome:
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    request_id: str = "-"
    messages_in: int = 0
    messages_out: int = 0


@dataclass
class _Exchange:
    """One gRPC-web response being written: trailers-only, or headers then frames then the trailers frame."""

    request: web.Request
    content_type: ContentType
    cors: Cors
    response: web.StreamResponse | None = None
    request_id: str = "-"  # returned when the backend did not return one (e.g. the gateway answered itself)

    @property
    def started(self) -> bool:
        return self.response is not None

    def _base_headers(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        names = [name for name, _ in pairs]
        cors = self.cors.headers(self.request, names)
        return [("Content-Type", self.content_type.value), ("Cache-Control", "no-store"), *cors.items(), *pairs]

    async def start(self, initial_metadata: Iterable[tuple[str, MetadataValue]] | None) -> None:
        response = web.StreamResponse(status=200)
        for name, value in self._base_headers(http_pairs(initial_metadata)):
            response.headers.add(name, value)
        await response.prepare(self.request)
        self.response = response

    async def send(self, payload: bytes, flags: int = 0) -> None:
        assert self.response is not None
        data = frame(payload, flags)
        await self.response.write(base64.b64encode(data) if self.content_type.mode is Mode.TEXT else data)

    def _with_request_id(self, trailers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if self.request_id == "-" or any(name == "x-request-id" for name, _ in trailers):
            return trailers
        return [*trailers, ("x-request-id", self.request_id)]

    async def finish(self, trailers: list[tuple[str, str]]) -> web.StreamResponse:
        """The trailers frame ends a started response."""
        assert self.response is not None
        await self.send(trailers_block(self._with_request_id(trailers)), flags=0x80)
        await self.response.write_eof()
        return self.response

    def trailers_only(self, trailers: list[tuple[str, str]]) -> web.Response:
        response = web.Response(status=200)
        for name, value in self._base_headers(self._with_request_id(trailers)):
            response.headers.add(name, value)
        return response


def status_trailers(
    code: grpc.StatusCode, message: str, metadata: Iterable[tuple[str, MetadataValue]] | None = None
) -> list[tuple[str, str]]:
    pairs = [("grpc-status", str(code.value[0]))]
    if message:
        pairs.append(("grpc-message", encode_grpc_message(message)))
    return pairs + http_pairs(metadata)


class GrpcWebProxy:
    def __init__(
        self,
        routes: Routes,
        limits: LimitsConfig,
        limiter: RateLimiter,
        cors: Cors,
        *,
        trusted_proxies: tuple[str, ...] = (),
    ) -> None:
        self.routes = routes
        self.limits = limits
        self.limiter = limiter
        self.cors = cors
        self._forwarded = ForwardedFor(trusted_proxies)
        self._rate = Rate(limit=limits.requests_per_second, period=1.0, burst=limits.burst)
        self._in_flight = 0
        self.shutting_down = False  # set when the gateway cancels the calls still open at shutdown

    @property
    def in_flight(self) -> int:
        """gRPC-web requests being proxied now (the ``marquee_gateway_in_flight`` gauge of this proxy alone)."""
        return self._in_flight

    def client_address(self, request: web.Request) -> tuple[str, str | None]:
        """(the client's address, the incoming x-forwarded-for chain when trusted)."""
        peer = request.remote or "unknown"
        forwarded = request.headers.get("x-forwarded-for", "").strip()
        client = self._forwarded.client(peer, forwarded or None)
        return client, (forwarded if forwarded and client != peer else None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        route = self.routes.lookup(request.path)
        service, method = (route.method.service, route.method.name) if route else ("unknown", "unknown")
        try:
            content_type = parse_content_type(request.headers.get("Content-Type"))
        except UnsupportedMediaType as exc:
            metrics.REFUSED.labels("content_type").inc()
            self._log(request, service, method, grpc.StatusCode.UNKNOWN, str(exc), started, "-")
            return web.Response(
                status=415,
                text=f"{exc}\n",
                headers={
                    "grpc-status": str(grpc.StatusCode.UNKNOWN.value[0]),
                    "grpc-message": encode_grpc_message(str(exc)),
                    **self.cors.headers(request),
                },
            )
        exchange = _Exchange(request, content_type, self.cors)
        outcome = _Outcome()
        self._in_flight += 1
        metrics.IN_FLIGHT.inc()
        try:
            try:
                return await self._proxy(request, route, exchange, outcome)
            except ProtocolError as exc:
                metrics.REFUSED.labels(exc.reason).inc()
                outcome.code, outcome.message = exc.code, exc.message
                if exchange.started:
                    return await exchange.finish(status_trailers(exc.code, exc.message))
                return exchange.trailers_only(status_trailers(exc.code, exc.message, _retry_details(exc)))
        except ConnectionResetError:
            # the client went away: nobody reads what is returned here
            outcome.code, outcome.message = grpc.StatusCode.CANCELLED, "the client went away"
            return exchange.response or web.Response(status=400)
        except asyncio.CancelledError:
            outcome.code, outcome.message = grpc.StatusCode.CANCELLED, "the client went away"
            raise
        except Exception:
            # a bug here must cost one request, never the gateway: the client gets INTERNAL with the request id
            log.exception("unexpected error proxying %s", request.path[:128])
            message = f"internal gateway error (request id {outcome.request_id})"
            outcome.code, outcome.message = grpc.StatusCode.INTERNAL, message
            trailers = status_trailers(grpc.StatusCode.INTERNAL, message)
            if exchange.started:
                with contextlib.suppress(Exception):
                    return await exchange.finish(trailers)
                return exchange.response or web.Response(status=500)
            return exchange.trailers_only(trailers)
        finally:
            self._in_flight -= 1
            metrics.IN_FLIGHT.dec()
            metrics.REQUESTS.labels(service, method, outcome.code.name, content_type.mode.value).inc()
            metrics.LATENCY.labels(service, method).observe(time.perf_counter() - started)
            self._log(request, service, method, outcome.code, outcome.message, started, outcome.request_id)

    async def _proxy(
        self, request: web.Request, route: Route | None, exchange: _Exchange, outcome: _Outcome
    ) -> web.StreamResponse:
        arrived = time.monotonic()
        if self.cors.forbidden(request):
            raise ProtocolError(
                grpc.StatusCode.PERMISSION_DENIED, "this origin may not call the gateway (CORS)", "origin"
            )
        address, forwarded = self.client_address(request)
        try:
            admitted = await self.limiter.hit(f"gateway:{address}", self._rate)
        except RateLimiterUnavailable as exc:
            raise ProtocolError(grpc.StatusCode.UNAVAILABLE, exc.message, "rate_limiter") from exc
        if not admitted.allowed:
            raise _RateLimited(admitted.retry_after)
        if self._in_flight > self.limits.max_in_flight:
            raise ProtocolError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "the gateway is at its limit of RPCs in flight", "in_flight"
            )
        if route is None:
            raise ProtocolError(grpc.StatusCode.UNIMPLEMENTED, self._no_route(request.path), "no_route")
        m = route.method

        timeout_header = request.headers.get("grpc-timeout")
        timeout = parse_timeout(timeout_header) if timeout_header is not None else None
        # the client's deadline goes to the backend; without one, the gateway still waits no longer than
        # default_timeout for a unary request's body and a unary answer, without imposing a deadline on the backend
        deadline = None if timeout is None else arrived + timeout
        read_guard = deadline or arrived + self.limits.default_timeout
        guard = deadline if deadline is not None or m.server_streaming else read_guard

        encoding = request.headers.get("grpc-encoding", "identity").strip().lower() or "identity"
        if encoding not in SUPPORTED_ENCODINGS:
            raise ProtocolError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"grpc-encoding {encoding[:32]!r} is not supported (supported: {ACCEPT_ENCODING})",
                "encoding",
            )
        declared = request.content_length
        if declared is not None and declared > self.limits.max_request_bytes:
            raise ProtocolError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request body of {declared} bytes is larger than the limit of {self.limits.max_request_bytes} bytes",
            )

        metadata = request_metadata(request.headers, request.remote or "unknown", forwarded)
        outcome.request_id = exchange.request_id = new_request_id(request.headers.get("x-request-id"))
        if request.headers.get("x-request-id") != outcome.request_id:
            metadata = [(k, v) for k, v in metadata if k != "x-request-id"] + [("x-request-id", outcome.request_id)]
        messages = self._messages(request, exchange.content_type, encoding, outcome)

        if m.client_streaming:
            return await self._call_streaming_request(route, messages, metadata, deadline, guard, exchange, outcome)
        single = await self._single_message(messages, read_guard, m.path)
        call = route.callable(single, timeout=_remaining(deadline), metadata=grpc.aio.Metadata(*metadata))
        if m.server_streaming:
            return await self._stream_response(call, route, exchange, outcome)
        return await self._unary_response(call, route, exchange, outcome, guard)

    def _no_route(self, path: str) -> str:
        _, _, rest = path.partition("/")
        service, _, method = rest.partition("/")
        if not service or not method or "/" in method:
            return f"{path[:128]!r} is not a gRPC method path (/package.Service/Method)"
        if self.routes.service_known(service):
            return f"method {method[:64]!r} is not part of {service}"
        return f"the gateway has no route for service {service[:128]!r}"

    async def _messages(
        self, request: web.Request, content_type: ContentType, encoding: str, outcome: _Outcome
    ) -> AsyncIterator[bytes]:
        """The request's messages as its body arrives: base64 undone (text mode), frames split, gzip undone."""
        reader = FrameReader(self.limits.max_message_bytes)
        decoder = Base64Decoder() if content_type.mode is Mode.TEXT else None
        received = 0
        async for chunk in _body(request):
            received += len(chunk)
            if received > self.limits.max_request_bytes:
                raise ProtocolError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"request body is larger than the limit of {self.limits.max_request_bytes} bytes",
                )
            for f in reader.feed(decoder.feed(chunk) if decoder else chunk):
                payload = self._payload(f, encoding)
                outcome.messages_in += 1
                metrics.MESSAGES.labels("request").inc()
                metrics.MESSAGE_BYTES.labels("request").inc(len(payload))
                yield payload
        if decoder:
            decoder.finish()
        reader.finish()

    def _payload(self, f: Frame, encoding: str) -> bytes:
        if not f.compressed:
            return f.payload
        if encoding == "identity":
            # the one malformed request whose status the gRPC protocol fixes (and the Connect conformance suite checks)
            raise ProtocolError(
                grpc.StatusCode.INTERNAL,
                "malformed request: a message is marked compressed but grpc-encoding is identity",
            )
        return gunzip(f.payload, self.limits.max_message_bytes)

    async def _single_message(self, messages: AsyncIterator[bytes], guard: float | None, path: str) -> bytes:
        """The one request message of a unary-request method, read whole within the deadline."""
        received: list[bytes] = []
        try:
            async with asyncio.timeout_at(_loop_deadline(guard)):
                received = [m async for m in messages]
        except TimeoutError:
            raise ProtocolError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed while reading the request", "deadline"
            ) from None
        if len(received) != 1:
            # a cardinality violation: what gRPC answers with UNIMPLEMENTED
            raise ProtocolError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{path} takes exactly one request message; got {len(received)}",
                "cardinality",
            )
        return received[0]

    async def _call_streaming_request(
        self,
        route: Route,
        messages: AsyncIterator[bytes],
        metadata: Metadata,
        deadline: float | None,
        guard: float | None,
        exchange: _Exchange,
        outcome: _Outcome,
    ) -> web.StreamResponse:
        """Client-streaming and (half-duplex) bidi methods: messages go to the backend as they arrive."""
        call = route.callable(timeout=_remaining(deadline), metadata=grpc.aio.Metadata(*metadata))
        failure: list[ProtocolError] = []

        async def pump() -> None:
            try:
                async for message in messages:
                    await call.write(message)
                await call.done_writing()
            except ProtocolError as exc:
                failure.append(exc)
                call.cancel()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the call already ended (the backend answered early): its status is the answer
            except ConnectionResetError:
                failure.append(ProtocolError(grpc.StatusCode.CANCELLED, "the client went away", "cancelled"))
                call.cancel()

        pumping = asyncio.create_task(pump())
        try:
            if route.method.server_streaming:
                return await self._stream_response(call, route, exchange, outcome, failure)
            return await self._unary_response(call, route, exchange, outcome, guard, failure)
        finally:
            if not pumping.done():
                pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping

    async def _unary_response(
        self,
        call: Any,
        route: Route,
        exchange: _Exchange,
        outcome: _Outcome,
        guard: float | None,
        failure: list[ProtocolError] | None = None,
    ) -> web.StreamResponse:
        response: bytes | None = None
        try:
            async with asyncio.timeout_at(_loop_deadline(guard)):
                response = await call
        except grpc.aio.AioRpcError:
            pass
        except TimeoutError:
            call.cancel()
            raise ProtocolError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the backend answered", "deadline"
            ) from None
        except asyncio.CancelledError:
            if failure:
                raise failure[0] from None
            if self._cut_at_shutdown():
                raise _SHUTTING_DOWN from None
            call.cancel()
            raise
        if response is not None:
            await exchange.start(await call.initial_metadata())
            await self._forward(exchange, response, outcome)
        return await self._end(call, route, exchange, outcome)

    async def _stream_response(
        self,
        call: Any,
        route: Route,
        exchange: _Exchange,
        outcome: _Outcome,
        failure: list[ProtocolError] | None = None,
    ) -> web.StreamResponse:
        headers = asyncio.ensure_future(call.initial_metadata())
        read: asyncio.Future[Any] | None = None
        try:
            while True:
                read = asyncio.ensure_future(call.read())
                if not exchange.started and not headers.done():
                    # headers first, as soon as the backend sends them, even before its first message
                    await asyncio.wait({read, headers}, return_when=asyncio.FIRST_COMPLETED)
                    if headers.done() and not read.done() and headers.result():
                        await exchange.start(headers.result())
                try:
                    message = await read
                except grpc.aio.AioRpcError:
                    break
                if message is EOF:
                    break
                if not exchange.started:
                    await exchange.start(await call.initial_metadata())
                await self._forward(exchange, message, outcome)
        except asyncio.CancelledError:
            if failure:
                error = failure[0]
            elif self._cut_at_shutdown():
                error = _SHUTTING_DOWN
            else:
                call.cancel()
                raise
            if exchange.started:
                metrics.REFUSED.labels(error.reason).inc()
                outcome.code, outcome.message = error.code, error.message
                return await exchange.finish(status_trailers(error.code, error.message))
            raise error from None
        except ConnectionResetError:
            call.cancel()
            raise
        finally:
            for pending in (headers, read):
                if pending is not None and not pending.done():
                    pending.cancel()
        return await self._end(call, route, exchange, outcome)

    def _cut_at_shutdown(self) -> bool:
        """The call was cancelled because the gateway is stopping (not because this request's task was)."""
        task = asyncio.current_task()
        return self.shutting_down and (task is None or task.cancelling() == 0)

    async def _forward(self, exchange: _Exchange, message: bytes, outcome: _Outcome) -> None:
        outcome.messages_out += 1
        metrics.MESSAGES.labels("response").inc()
        metrics.MESSAGE_BYTES.labels("response").inc(len(message))
        await exchange.send(message)

    async def _end(self, call: Any, route: Route, exchange: _Exchange, outcome: _Outcome) -> web.StreamResponse:
        """The call's status as the trailers frame, or as a trailers-only response when nothing was sent."""
        code = await call.code()
        message = await call.details() or ""
        trailing = await call.trailing_metadata()
        if code == grpc.StatusCode.UNAVAILABLE and not trailing:
            # no trailers from a server: the backend was never reached (down, restarting, refusing connections)
            log.warning(
                "backend unavailable",
                extra={"grpc_service": route.method.service, "backend": route.method.backend, "error": message},
            )
            message = f"{route.method.service} is unavailable: the gateway could not reach it; retry later"
        outcome.code, outcome.message = code, message if code != grpc.StatusCode.OK else ""
        trailers = status_trailers(code, message, trailing)
        if exchange.started:
            return await exchange.finish(trailers)
        initial = await call.initial_metadata()
        if initial:
            await exchange.start(initial)
            return await exchange.finish(trailers)
        return exchange.trailers_only(trailers)

    def _log(
        self,
        request: web.Request,
        service: str,
        method: str,
        code: grpc.StatusCode,
        message: str,
        started: float,
        request_id: str,
    ) -> None:
        access_log.info(
            "grpc-web",
            extra={
                "method": f"/{service}/{method}" if service != "unknown" else request.path[:128],
                "code": code.name,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "peer": request.remote,
                "grpc_request_id": request_id,
                "error": message or None,
            },
        )


class _RateLimited(ProtocolError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many requests from this address: retry in {max(retry_after, 0.001):.3f} s",
            "rate_limit",
        )
        self.retry_after = retry_after


_SHUTTING_DOWN = ProtocolError(grpc.StatusCode.UNAVAILABLE, "the gateway is shutting down; retry", "shutdown")


def _retry_details(exc: ProtocolError) -> list[tuple[str, MetadataValue]]:
    """``grpc-status-details-bin`` with google.rpc.RetryInfo for a rate-limited client."""
    if not isinstance(exc, _RateLimited):
        return []
    status = ResourceExhausted(exc.message, reason="RATE_LIMITED", retry_after=exc.retry_after).to_status()
    return list(status.trailing_metadata or ())


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body's chunks as they arrive; a broken body (bad chunked encoding, short of its
    Content-Length) is a malformed request. A client that went away raises ConnectionResetError."""
    try:
        async for chunk in request.content.iter_any():
            yield chunk
    except HttpProcessingError as exc:
        raise ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: the HTTP body could not be read ({exc.message})"
        ) from None


def _remaining(deadline: float | None) -> float | None:
    """The backend call's timeout for the client's deadline (never one the backend would see as later)."""
    if deadline is None:
        return None
    remaining = backend_timeout(deadline - time.monotonic())
    if remaining <= 0:
        raise ProtocolError(
            grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call could start", "deadline"
        )
    return remaining


def _loop_deadline(deadline: float | None) -> float | None:
    """A time.monotonic() deadline on the event loop's clock (asyncio.timeout_at)."""
    if deadline is None:
        return None
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())
