"""Checking the google.protobuf Timestamp and Duration values clients send, with errors that say what is wrong.

Protobuf lets a client put any int64 in ``seconds`` and any int32 in ``nanos``; the conversions
(``ToMicroseconds``, ``ToJsonString``) then raise deep in a handler, which would surface as INTERNAL. Every
handler that reads a client's time value goes through these functions first. The valid ranges are protobuf's
own: a Timestamp lies in years 1 to 9999 with ``0 <= nanos < 1e9``; a Duration lies within +-10,000 years with
``|nanos| < 1e9`` and nanos of the same sign as seconds.
"""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2

from services.common.errors import InvalidArgument

TIMESTAMP_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
TIMESTAMP_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
DURATION_MAX_SECONDS = 315_576_000_000  # 10,000 years
NANOS_PER_SECOND = 1_000_000_000
# Event times before this are a client without a set clock (1970) rather than anything it observed.
EARLIEST_EVENT_SECONDS = 946_684_800  # 2000-01-01T00:00:00Z


def timestamp_micros(ts: timestamp_pb2.Timestamp, field: str) -> int:
    """A valid Timestamp in microseconds since the epoch; INVALID_ARGUMENT naming ``field`` otherwise."""
    if not 0 <= ts.nanos < NANOS_PER_SECOND:
        raise InvalidArgument(f"{field}.nanos {ts.nanos} must be from 0 to 999999999", field_name=field)
    if not TIMESTAMP_MIN_SECONDS <= ts.seconds <= TIMESTAMP_MAX_SECONDS:
        raise InvalidArgument(
            f"{field}.seconds {ts.seconds} is outside the Timestamp range (year 1 to 9999)", field_name=field
        )
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def event_time_micros(ts: timestamp_pb2.Timestamp, field: str, *, present: bool) -> int:
    """When a client says something happened: required, a valid Timestamp, and not before 2000 (a clock that
    was never set); clamping a clock that runs ahead is the caller's business."""
    if not present:
        raise InvalidArgument(f"{field} is required", field_name=field)
    micros = timestamp_micros(ts, field)
    if ts.seconds < EARLIEST_EVENT_SECONDS:
        raise InvalidArgument(
            f"{field} {ts.ToJsonString()} is before 2000-01-01T00:00:00Z: the client's clock is not set",
            field_name=field,
        )
    return micros


def duration_ms(d: duration_pb2.Duration, field: str) -> int:
    """A valid, non-negative Duration in whole milliseconds; INVALID_ARGUMENT naming ``field`` otherwise."""
    if not -NANOS_PER_SECOND < d.nanos < NANOS_PER_SECOND:
        raise InvalidArgument(f"{field}.nanos {d.nanos} must be from -999999999 to 999999999", field_name=field)
    if (d.seconds > 0 and d.nanos < 0) or (d.seconds < 0 and d.nanos > 0):
        raise InvalidArgument(f"{field}: seconds and nanos must have the same sign", field_name=field)
    if abs(d.seconds) > DURATION_MAX_SECONDS:
        raise InvalidArgument(
            f"{field}.seconds {d.seconds} is outside the Duration range (10,000 years)", field_name=field
        )
    if d.seconds < 0 or d.nanos < 0:
        raise InvalidArgument(f"{field} must not be negative", field_name=field)
    return d.seconds * 1000 + d.nanos // 1_000_000


def timestamp_of(micros: int) -> timestamp_pb2.Timestamp:
    """The Timestamp of a time the server keeps in microseconds since the epoch."""
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(micros)
    return ts


def duration_of(micros: int) -> duration_pb2.Duration:
    """The Duration of a span the server keeps in microseconds."""
    d = duration_pb2.Duration()
    d.FromMicroseconds(micros)
    return d
