"""Asyncio tasks of a service: background ones (bus consumers, loops) stopped together, and bounded fan-outs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar, cast

T = TypeVar("T")

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


async def gather_bounded(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Runs ``calls`` concurrently, at most ``limit`` at a time, each to its end; then raises the first error if
    one failed (no call is left running behind it), else returns their results in order."""
    slots = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with slots:
            return await call()

    results = await asyncio.gather(*(one(c) for c in calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)
