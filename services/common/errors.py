"""One error model for every Marquee service.

Handlers raise a :class:`ServiceError` subclass; the server's error interceptor turns it into a gRPC status
whose ``grpc-status-details-bin`` trailer carries a ``google.rpc.Status`` with an ``ErrorInfo`` (reason,
domain, metadata) and, for bad requests, a ``BadRequest`` listing the offending fields. Anything else that
escapes a handler becomes INTERNAL with the request id, never a traceback on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "marquee.v1"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field in a request: the field path and what is wrong with it."""

    field: str
    description: str


class ServiceError(Exception):
    """Base of every error a handler means to send. ``reason`` is an ``ErrorReason`` name (UPPER_SNAKE)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        code: grpc.StatusCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata: Mapping[str, str] = metadata or {}
        if code is not None:
            self.code = code

    def details(self) -> list[any_pb2.Any]:
        """Extra google.rpc detail messages beyond ErrorInfo (overridden by subclasses)."""
        return []

    def to_status(self) -> grpc.Status:
        detail_msgs: list[any_pb2.Any] = []
        if self.reason:
            info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=dict(self.metadata))
            packed = any_pb2.Any()
            packed.Pack(info)
            detail_msgs.append(packed)
        detail_msgs.extend(self.details())
        status = status_pb2.Status(code=_CODE_NUMBERS[self.code], message=self.message, details=detail_msgs)
        return rpc_status.to_status(status)


class InvalidArgument(ServiceError):
    """The request is malformed. Optionally lists each bad field (google.rpc.BadRequest)."""

    def __init__(
        self,
        message: str,
        *,
        field_name: str | None = None,
        violations: Sequence[FieldViolation] = (),
        reason: str = "",
    ) -> None:
        vs = list(violations)
        if field_name is not None:
            vs.insert(0, FieldViolation(field_name, message))
        self.violations = vs
        super().__init__(message, reason=reason, code=grpc.StatusCode.INVALID_ARGUMENT)

    def details(self) -> list[any_pb2.Any]:
        if not self.violations:
            return []
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in self.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        return [packed]


class NotFound(ServiceError):
    def __init__(self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, reason=reason, metadata=metadata or {}, code=grpc.StatusCode.NOT_FOUND)


class AlreadyExists(ServiceError):
    def __init__(self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, reason=reason, metadata=metadata or {}, code=grpc.StatusCode.ALREADY_EXISTS)


class PermissionDenied(ServiceError):
    def __init__(self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, reason=reason, metadata=metadata or {}, code=grpc.StatusCode.PERMISSION_DENIED)


class Unauthenticated(ServiceError):
    def __init__(self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, reason=reason, metadata=metadata or {}, code=grpc.StatusCode.UNAUTHENTICATED)


class FailedPrecondition(ServiceError):
    def __init__(self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, reason=reason, metadata=metadata or {}, code=grpc.StatusCode.FAILED_PRECONDITION)


class Aborted(ServiceError):
    def __init__(self, message: str, *, reason: str = "", metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, reason=reason, metadata=metadata or {}, code=grpc.StatusCode.ABORTED)


class Unavailable(ServiceError):
    """Try again later. ``retry_after`` (seconds) is sent as google.rpc.RetryInfo when known."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        retry_after: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, reason=reason, metadata=metadata or {}, code=grpc.StatusCode.UNAVAILABLE)

    def details(self) -> list[any_pb2.Any]:
        return _retry_info(self.retry_after)


class DeadlineExceeded(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code=grpc.StatusCode.DEADLINE_EXCEEDED)


class ResourceExhausted(ServiceError):
    """A limit was hit. ``retry_after`` (seconds) is sent as google.rpc.RetryInfo when known."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        retry_after: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, reason=reason, metadata=metadata or {}, code=grpc.StatusCode.RESOURCE_EXHAUSTED)

    def details(self) -> list[any_pb2.Any]:
        return _retry_info(self.retry_after)


def _retry_info(seconds: float | None) -> list[any_pb2.Any]:
    if seconds is None:
        return []
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(int(seconds * 1000))
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return [packed]


class Internal(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code=grpc.StatusCode.INTERNAL)


_CODE_NUMBERS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: code_pb2.OK,
    grpc.StatusCode.CANCELLED: code_pb2.CANCELLED,
    grpc.StatusCode.UNKNOWN: code_pb2.UNKNOWN,
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED: code_pb2.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE: code_pb2.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED: code_pb2.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: code_pb2.DATA_LOSS,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
}


def error_info(err: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """Client side: the ErrorInfo carried by a failed call, if any (used by tests and service-to-service)."""
    status = rpc_status.from_call(cast(grpc.Call, err))
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
