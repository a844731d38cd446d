"""What steering's shared state on Redis raises when Redis cannot be reached: UNAVAILABLE with a reason, never
INTERNAL (a caller retries; an edge keeps heartbeating)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from services.common.errors import Unavailable
from services.common.redisclient import UNREACHABLE

log = logging.getLogger("marquee.steering")

RETRY_AFTER = 1.0  # seconds a caller is told to wait


def unavailable(exc: Exception) -> Unavailable:
    return Unavailable(
        f"steering's shared state (redis) is unreachable: {exc}",
        reason="STEERING_STATE_UNAVAILABLE",
        retry_after=RETRY_AFTER,
    )


def redis_ms(time_reply: tuple[int, int] | list[int]) -> int:
    """Redis ``TIME`` (seconds, microseconds) in unix milliseconds."""
    return int(time_reply[0]) * 1000 + int(time_reply[1]) // 1000


def raise_if_cancelling(exc: Exception) -> None:
    """Re-raises a cancellation redis-py turned into a connection error (a cancel that lands while it connects
    can surface as ConnectionError or TimeoutError): a refresh loop that swallowed it would never stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


async def refresh_forever(refresh: Callable[[], Awaitable[None]], interval: float, what: str) -> None:
    """Calls ``refresh`` every ``interval`` seconds until cancelled; while Redis is unreachable the last snapshot
    stays (a warning per failed refresh)."""
    while True:
        try:
            await refresh()
        except UNREACHABLE as exc:
            raise_if_cancelling(exc)
            log.warning("steering: %s on redis unreachable, keeping the last snapshot: %s", what, exc)
        await asyncio.sleep(interval)
