"""Background asyncio tasks of a service (bus consumers, loops): stopping them together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

# A task still running this long after its cancel is cancelled again: a cancel that lands while redis-py connects
# can come out of its connect timeout as a ConnectionError or TimeoutError (asyncio.timeout uncancels the task),
# and a loop that retries on those errors would then run on and never let its service stop.
RECANCEL_AFTER = 1.0


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancels every task, then waits for each to finish its clean-up (cancelling again any that swallowed the
    cancellation and kept running)."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
