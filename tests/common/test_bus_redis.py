"""The Redis Streams bus against a real redis-server: the conformance suite, dead letters, crashes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
    from services.platform.localredis import free_port

    b = RedisBus.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BusUnavailable, match="unreachable"):
        await b.publish("t.down", b"x")
    await b.close()
