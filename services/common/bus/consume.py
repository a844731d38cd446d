"""Following a topic: the subscribe / decode / handle / acknowledge loop every consumer needs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from services.common.bus.port import EventBus
from services.common.bus.redis import BusUnavailable
from services.common.errors import InvalidArgument

M = TypeVar("M", bound=Message)
log = logging.getLogger("marquee.bus")
RETRY_AFTER = 1.0  # seconds between subscriptions while the bus cannot be reached


async def follow_topic(
    bus: EventBus,
    topic: str,
    group: str,
    consumer: str,
    event_type: type[M],
    handle: Callable[[M], Awaitable[None]],
    *,
    from_beginning: bool = False,
    per_process: bool = False,
) -> None:
    """Hands every event of ``topic`` to ``handle`` until cancelled, acknowledging each once handled. An event
    that does not decode, or that ``handle`` finds invalid (InvalidArgument), is logged and dropped rather than
    redelivered for ever; any other failure leaves it unacknowledged, for redelivery. While the bus cannot be reached
    (Redis restarting) it subscribes again every ``RETRY_AFTER`` seconds: what was published meanwhile waits in the
    group, and what it held unacknowledged is redelivered."""
    while True:
        try:
            await _follow(bus, topic, group, consumer, event_type, handle, from_beginning, per_process)
        except BusUnavailable as exc:
            log.warning("following %s: %s; subscribing again in %.1f s", topic, exc, RETRY_AFTER)
            await asyncio.sleep(RETRY_AFTER)


async def _follow(
    bus: EventBus,
    topic: str,
    group: str,
    consumer: str,
    event_type: type[M],
    handle: Callable[[M], Awaitable[None]],
    from_beginning: bool,
    per_process: bool,
) -> None:
    subscription = await bus.subscribe(topic, group, consumer, from_beginning=from_beginning, per_process=per_process)
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
