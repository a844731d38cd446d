"""Following a topic: the subscribe / decode / handle / acknowledge loop every consumer needs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from services.common.bus.port import EventBus
from services.common.errors import InvalidArgument

M = TypeVar("M", bound=Message)
log = logging.getLogger("marquee.bus")


async def follow_topic(
    bus: EventBus,
    topic: str,
    group: str,
    consumer: str,
    event_type: type[M],
    handle: Callable[[M], Awaitable[None]],
    *,
    from_beginning: bool = False,
) -> None:
    """Hands every event of ``topic`` to ``handle`` until cancelled, acknowledging each once handled. An event
    that does not decode, or that ``handle`` finds invalid (InvalidArgument), is logged and dropped rather than
    redelivered for ever; any other failure leaves it unacknowledged, for redelivery."""
    subscription = await bus.subscribe(topic, group, consumer, from_beginning=from_beginning)
    try:
        async for message in subscription:
            try:
                await handle(event_type.FromString(message.payload))
            except (DecodeError, InvalidArgument) as exc:
                log.warning("dropping malformed %s message %s: %s", topic, message.id, exc)
            await subscription.ack(message)
    finally:
        with contextlib.suppress(Exception):
            await subscription.close()
