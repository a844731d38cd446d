"""The Redis Streams bus against a real redis-server: the conformance suite, dead letters, crashes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.common.bus.port import Message
from services.common.bus.redis import RedisBus
from services.platform.localredis import RedisServer
from tests.common.bus_conformance import *  # noqa: F403

MAX_LEN = 100


@pytest.fixture
def bus_max_len() -> int:
    return MAX_LEN


@pytest.fixture
async def bus(redis_server: RedisServer, redis_prefix: str) -> AsyncIterator[RedisBus]:
    b = RedisBus.from_url(redis_server.url, prefix=redis_prefix, max_len=MAX_LEN, max_attempts=3)
    yield b
    await b.close()


async def test_a_message_past_max_attempts_goes_to_the_dead_letter_stream(bus: RedisBus) -> None:
    sub = await bus.subscribe("t.poison", "g", "c", visibility_timeout=0.2)
    await bus.publish("t.poison", b"poison", key="k1")
    await bus.publish("t.poison", b"fine")
    attempts: list[int] = []
    fine = 0
    while True:  # the poison message is delivered max_attempts times, never acknowledged; the other one is fine
        message = await sub.next(timeout=2)
        if message is None:
            break
        if message.payload == b"fine":
            fine += 1
            await sub.ack(message)
        else:
            attempts.append(message.attempt)
            await sub.nack(message)
    assert attempts == [1, 2, 3] and fine == 1  # a 4th delivery would exceed max_attempts: dead-lettered instead
    dead = await bus.dead_letters("t.poison")
    assert len(dead) == 1 and dead[0]["group"] == "g" and dead[0]["attempts"] == "3"
    assert "max_attempts 3" in dead[0]["reason"]


async def test_a_dead_consumers_messages_go_to_another_after_the_visibility_timeout(bus: RedisBus) -> None:
    dead = await bus.subscribe("t.crash", "g", "dead-consumer", visibility_timeout=0.3)
    alive = await bus.subscribe("t.crash", "g", "alive-consumer", visibility_timeout=0.3)
    await bus.publish("t.crash", b"m")
    taken = await dead.next(timeout=2)
    assert taken is not None and taken.attempt == 1
    # the first consumer never acknowledges (its process died); the message is not lost
    again = await alive.next(timeout=5)
    assert again is not None and again.id == taken.id and again.attempt == 2
    await alive.ack(again)
    assert await alive.next(timeout=0.6) is None


async def test_batches_come_in_order_are_redelivered_whole_and_acknowledged_at_once(bus: RedisBus) -> None:
    """next_batch gives up to max_count messages in order; what it gave and nobody acknowledged comes back, in order,
    once the visibility timeout passed; ack_many acknowledges a whole batch with one XACK."""
    sub = await bus.subscribe("t.batch", "g", "c", visibility_timeout=0.3)
    ids = [await bus.publish("t.batch", f"m{n}".encode(), key=f"k{n}") for n in range(7)]
    first = await sub.next_batch(5, timeout=2)
    rest = await sub.next_batch(5, timeout=2)
    assert [m.id for m in first] == ids[:5] and [m.id for m in rest] == ids[5:]
    assert [m.payload for m in first + rest] == [f"m{n}".encode() for n in range(7)]
    assert {m.attempt for m in first + rest} == {1} and first[0].key == "k0"
    again: list[Message] = []
    while len(again) < len(ids):  # nothing was acknowledged: every one is claimed again once it has been idle
        batch = await sub.next_batch(5, timeout=5)
        assert batch, "the unacknowledged messages were not redelivered"
        assert len(batch) <= 5
        again += batch
    assert [m.id for m in again] == ids and {m.attempt for m in again} == {2}
    await sub.ack_many([])
    await sub.ack_many(again)
    assert (await bus.redis.xpending(bus.stream("t.batch"), "g"))["pending"] == 0
    assert await sub.next_batch(5, timeout=0.6) == []  # past another visibility timeout: nothing comes back


async def test_a_claimed_batch_carries_each_messages_delivery_count(bus: RedisBus) -> None:
    """The attempts of a claimed batch are the delivery counts Redis keeps, also when the consumer holds a message
    between the claimed ones that is not due yet (the one XPENDING of their range does not list them all)."""
    sub = await bus.subscribe("t.attempts", "g", "c", visibility_timeout=30)
    ids = [await bus.publish("t.attempts", f"m{n}".encode()) for n in range(3)]
    taken = await sub.next_batch(3, timeout=2)
    assert [m.id for m in taken] == ids
    await sub.nack(taken[0])
    await sub.nack(taken[2])  # m1 stays with this consumer, due in 30 s
    again = await sub.next_batch(3, timeout=2)
    assert [(m.id, m.attempt) for m in again] == [(ids[0], 2), (ids[2], 2)]


async def test_the_bus_survives_the_subscriber_reconnecting(bus: RedisBus, redis_server: RedisServer) -> None:
    """A group keeps its position: a subscriber that comes back (a restarted replica) gets what it missed."""
    first = await bus.subscribe("t.resume", "g", "c1")
    await bus.publish("t.resume", b"one")
    got = await first.next(timeout=2)
    assert got is not None
    await first.ack(got)
    await first.close()
    await bus.publish("t.resume", b"two")
    second = await bus.subscribe("t.resume", "g", "c1")
    got = await second.next(timeout=2)
    assert got is not None and got.payload == b"two"


async def test_redis_down_is_bus_unavailable(tmp_path: object) -> None:
    from services.common.bus.redis import BusUnavailable
    from services.common.ports import free_port

    b = RedisBus.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BusUnavailable, match="unreachable"):
        await b.publish("t.down", b"x")
    await b.close()


async def test_per_process_groups_go_with_their_process(redis_server: RedisServer, redis_prefix: str) -> None:
    """A process's own group is removed when its bus closes; one whose process died without closing is removed by
    the next process that subscribes such a group to the topic, once Redis reports its consumer idle for longer
    than ``process_idle`` (its alive key expired). Live processes' groups and groups replicas share stay."""
    idle = 3.0
    shared, stopping, crashed, live, newcomer = (
        RedisBus.from_url(redis_server.url, prefix=redis_prefix, process_idle=idle) for _ in range(5)
    )
    stream = shared.stream("t.procs")

    async def groups() -> set[str]:
        return {g["name"].decode() for g in await shared.redis.xinfo_groups(stream)}

    try:
        await shared.subscribe("t.procs", "shared", "c")
        await stopping.subscribe("t.procs", "p-stopping", "c", per_process=True)
        await crashed.subscribe("t.procs", "p-crashed", "c", per_process=True)
        alive = await live.subscribe("t.procs", "p-live", "c", per_process=True)
        assert await groups() == {"shared", "p-stopping", "p-crashed", "p-live"}
        await stopping.close()
        assert await groups() == {"shared", "p-crashed", "p-live"}
        while await shared.redis.exists(shared.alive_key("t.procs", "p-crashed")):  # noqa: ASYNC110 - Redis's expiry
            await asyncio.sleep(0.1)
        assert await alive.next(timeout=0.2) is None  # the live process reads, as it does every BLOCK_SLICE
        await newcomer.subscribe("t.procs", "p-new", "c", per_process=True)
        assert await groups() == {"shared", "p-live", "p-new"}
        assert await shared.redis.smembers(shared.process_groups("t.procs")) == {b"p-live", b"p-new"}
    finally:
        for bus in (shared, crashed, live, newcomer):
            await bus.close()
    after = RedisBus.from_url(redis_server.url, prefix=redis_prefix)
    try:  # the live ones closed: only the shared group is left
        assert {g["name"].decode() for g in await after.redis.xinfo_groups(stream)} == {"shared"}
    finally:
        await after.close()
