"""The event-bus conformance suite: every EventBus adapter must pass it unchanged.

An adapter's test module does ``from tests.common.bus_conformance import *`` and defines an async fixture
``bus`` yielding a fresh bus of its kind.
"""

from __future__ import annotations

import asyncio

import pytest

from services.common.bus.port import EventBus, InvalidTopicError, Message


async def _drain(sub: object, timeout: float = 0.3) -> list[Message]:
    out: list[Message] = []
    while True:
        msg = await sub.next(timeout=timeout)  # type: ignore[attr-defined]
        if msg is None:
            return out
        out.append(msg)
        await sub.ack(msg)  # type: ignore[attr-defined]


async def test_every_group_gets_every_message_in_order(bus: EventBus) -> None:
    a = await bus.subscribe("title.viewed", "recs", "c1")
    b = await bus.subscribe("title.viewed", "stats", "c1")
    ids = [await bus.publish("title.viewed", f"m{i}".encode(), key="t1") for i in range(20)]
    assert len(set(ids)) == 20
    got_a, got_b = await _drain(a), await _drain(b)
    assert [m.payload for m in got_a] == [f"m{i}".encode() for i in range(20)]
    assert [m.payload for m in got_b] == [m.payload for m in got_a]
    assert all(m.attempt == 1 and m.key == "t1" and m.topic == "title.viewed" for m in got_a)


async def test_new_group_starts_at_the_tail_unless_from_beginning(bus: EventBus) -> None:
    await bus.publish("t.a", b"old")
    late = await bus.subscribe("t.a", "late", "c")
    early = await bus.subscribe("t.a", "replay", "c", from_beginning=True)
    await bus.publish("t.a", b"new")
    assert [m.payload for m in await _drain(late)] == [b"new"]
    assert [m.payload for m in await _drain(early)] == [b"old", b"new"]


async def test_consumers_in_a_group_share_messages(bus: EventBus) -> None:
    c1 = await bus.subscribe("t.share", "g", "c1")
    c2 = await bus.subscribe("t.share", "g", "c2")
    for i in range(10):
        await bus.publish("t.share", str(i).encode())
    got1: list[Message] = []
    got2: list[Message] = []
    for _ in range(5):
        for sub, got in ((c1, got1), (c2, got2)):
            m = await sub.next(timeout=1)
            assert m is not None
            got.append(m)
            await sub.ack(m)
    payloads = sorted(int(m.payload) for m in got1 + got2)
    assert payloads == list(range(10))
    assert got1 and got2


async def test_ack_stops_redelivery_nack_and_timeout_redeliver(bus: EventBus) -> None:
    sub = await bus.subscribe("t.redeliver", "g", "c", visibility_timeout=0.5)
    await bus.publish("t.redeliver", b"x")
    first = await sub.next(timeout=1)
    assert first is not None and first.attempt == 1
    await sub.nack(first)
    again = await sub.next(timeout=1)
    assert again is not None and again.id == first.id and again.attempt == 2
    # not acked: comes back after the visibility timeout
    third = await sub.next(timeout=3)
    assert third is not None and third.id == first.id and third.attempt == 3
    await sub.ack(third)
    assert await sub.next(timeout=1) is None


async def test_async_iteration_and_close(bus: EventBus) -> None:
    sub = await bus.subscribe("t.iter", "g", "c")
    received: list[bytes] = []

    async def consume() -> None:
        async for m in sub:
            received.append(m.payload)
            await sub.ack(m)
            if len(received) == 3:
                return

    task = asyncio.create_task(consume())
    for i in range(3):
        await bus.publish("t.iter", bytes([i]))
    await asyncio.wait_for(task, 5)
    assert received == [b"\x00", b"\x01", b"\x02"]
    await sub.close()


async def test_retention_is_bounded(bus: EventBus, bus_max_len: int) -> None:
    for i in range(bus_max_len + 50):
        await bus.publish("t.retain", str(i).encode())
    sub = await bus.subscribe("t.retain", "g", "c", from_beginning=True)
    got = await _drain(sub)
    assert len(got) == bus_max_len
    assert got[-1].payload == str(bus_max_len + 49).encode()


@pytest.mark.parametrize("topic", ["", "Upper", "has space", "x" * 200, "1starts-with-digit"])
async def test_bad_names_are_refused(bus: EventBus, topic: str) -> None:
    with pytest.raises(InvalidTopicError):
        await bus.publish(topic, b"x")
    with pytest.raises(InvalidTopicError):
        await bus.subscribe(topic, "g", "c")
