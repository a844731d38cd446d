"""The event-bus port, shaped like Redis Streams so the Redis adapter is a direct mapping.

- ``publish(topic, payload, key=...)`` appends a message and returns its id (ids increase per topic).
- ``subscribe(topic, group, consumer)`` joins a consumer group: every group sees every message published after
  the group was created (or from the start of the retained log with ``from_beginning=True``); the consumers of
  one group share the messages. Delivery is at-least-once: a message not acked within ``visibility_timeout``
  seconds, or nacked, is delivered again with ``attempt`` + 1. Per topic, a consumer sees messages in order.
- Retention is bounded: at most ``max_len`` messages per topic are kept (oldest dropped first).
- ``subscribe(..., per_process=True)`` marks a group that one process alone uses (every replica following every
  event has its own, ``name-<id>``): it is removed when the bus closes, and on Redis, when its process died
  without closing, by the next process that subscribes such a group to the topic (streams do not keep one idle group
  per process that ever ran).
Payloads are bytes (services put serialized protobuf in them).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

TOPIC_RE = re.compile(r"^[a-z][a-z0-9._-]{0,127}$")
MAX_PAYLOAD_BYTES = 1024 * 1024


class BusError(Exception):
    """Base of bus failures."""


class InvalidTopicError(BusError, ValueError):
    """A topic, group or consumer name is malformed, or a payload is too large."""


def check_name(kind: str, value: str) -> str:
    if not TOPIC_RE.match(value):
        raise InvalidTopicError(f"{kind} {value!r} must match {TOPIC_RE.pattern}")
    return value


@dataclass
class Message:
    id: str
    topic: str
    key: str | None
    payload: bytes
    attempt: int  # 1 on first delivery


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Message]: ...

    async def next(self, timeout: float | None = None) -> Message | None:
        """The next message, or None when ``timeout`` passes first."""
        ...

    async def ack(self, message: Message) -> None: ...

    async def nack(self, message: Message) -> None:
        """Give the message back for redelivery now."""
        ...

    async def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, topic: str, payload: bytes, *, key: str | None = None) -> str: ...

    async def subscribe(
        self,
        topic: str,
        group: str,
        consumer: str,
        *,
        from_beginning: bool = False,
        visibility_timeout: float = 30.0,
        per_process: bool = False,
    ) -> Subscription: ...

    async def close(self) -> None: ...
