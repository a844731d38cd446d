"""cancel_all stops background loops, even one that swallowed its cancellation (as a redis-py connect can)."""

from __future__ import annotations

import asyncio

from services.common.tasks import cancel_all


async def test_a_loop_that_swallows_a_cancel_is_still_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what a library that turns the cancel into an error the loop retries does
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    async def polite() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(polite())]
    await asyncio.sleep(0)
    await cancel_all(tasks)
    assert all(task.done() for task in tasks) and swallowed == 1
