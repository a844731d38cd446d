"""cancel_all stops background loops, even one that swallowed its cancellation (as a redis-py connect can);
gather_bounded keeps its limit and leaves no call running behind an error."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from services.common.tasks import cancel_all, gather_bounded


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


async def test_gather_bounded_keeps_its_limit_and_its_order() -> None:
    running = peak = 0

    async def call(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        return n

    assert await gather_bounded([partial(call, n) for n in range(20)], 3) == list(range(20))
    assert peak == 3


async def test_gather_bounded_finishes_every_call_before_raising_the_first_error() -> None:
    finished: list[int] = []

    async def call(n: int) -> None:
        await asyncio.sleep(0)
        if n in (1, 3):
            raise ValueError(f"call {n} failed")
        await asyncio.sleep(0)
        finished.append(n)

    with pytest.raises(ValueError, match="call 1 failed"):
        await gather_bounded([partial(call, n) for n in range(6)], 2)
    assert sorted(finished) == [0, 2, 4, 5]
