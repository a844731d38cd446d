"""The in-process event bus (what `marquee up` uses): asyncio, one process, same semantics as Redis Streams."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from services.common.bus.port import MAX_PAYLOAD_BYTES, BusError, InvalidTopicError, Message, check_name


@dataclass
class _Pending:
    message: Message
    consumer: str
    deadline: float


@dataclass
class _Group:
    last_seq: int
    pending: OrderedDict[int, _Pending] = field(default_factory=OrderedDict)


@dataclass
class _Topic:
    log: deque[tuple[int, Message]] = field(default_factory=deque)
    next_seq: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class _MemorySubscription:
    def __init__(self, bus: InMemoryBus, topic: str, group: str, consumer: str, visibility: float) -> None:
        self._bus = bus
        self._topic = topic
        self._group = group
        self._consumer = consumer
        self._visibility = visibility
        self._closed = False

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while not self._closed:
            msg = await self.next(timeout=None)
            if msg is not None:
                yield msg

    def _take(self, t: _Topic, g: _Group) -> Message | None:
        now = time.monotonic()
        for seq, p in g.pending.items():  # redeliver the oldest expired (or nacked) message first
            if p.deadline <= now:
                p.message = Message(
                    p.message.id, p.message.topic, p.message.key, p.message.payload, p.message.attempt + 1
                )
                p.consumer = self._consumer
                p.deadline = now + self._visibility
                g.pending.move_to_end(seq)
                return p.message
        for seq, msg in t.log:
            if seq > g.last_seq:
                g.last_seq = seq
                delivered = Message(msg.id, msg.topic, msg.key, msg.payload, 1)
                g.pending[seq] = _Pending(delivered, self._consumer, now + self._visibility)
                return delivered
        return None

    def _next_deadline(self, g: _Group) -> float | None:
        return min((p.deadline for p in g.pending.values()), default=None)

    async def next(self, timeout: float | None = None) -> Message | None:
        t = self._bus._topic(self._topic)
        g = t.groups[self._group]
        give_up = None if timeout is None else time.monotonic() + timeout
        async with t.changed:
            while not self._closed and not self._bus._closed:
                msg = self._take(t, g)
                if msg is not None:
                    return msg
                waits = [d - time.monotonic() for d in (self._next_deadline(g), give_up) if d is not None]
                wait = max(0.0, min(waits)) if waits else None
                if give_up is not None and time.monotonic() >= give_up:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(t.changed.wait(), wait)
        return None

    async def ack(self, message: Message) -> None:
        g = self._bus._topic(self._topic).groups[self._group]
        g.pending.pop(int(message.id), None)

    async def nack(self, message: Message) -> None:
        t = self._bus._topic(self._topic)
        p = t.groups[self._group].pending.get(int(message.id))
        if p is not None:
            p.deadline = 0.0
            async with t.changed:
                t.changed.notify_all()

    async def close(self) -> None:
        self._closed = True
        t = self._bus._topic(self._topic)
        async with t.changed:
            t.changed.notify_all()


class InMemoryBus:
    def __init__(self, max_len: int = 10_000) -> None:
        self._topics: dict[str, _Topic] = {}
        self._max_len = max_len
        self._closed = False

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic()
        return topic

    async def publish(self, topic: str, payload: bytes, *, key: str | None = None) -> str:
        if self._closed:
            raise BusError("the bus is closed")
        check_name("topic", topic)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise InvalidTopicError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        t = self._topic(topic)
        seq = t.next_seq
        t.next_seq += 1
        t.log.append((seq, Message(str(seq), topic, key, bytes(payload), 0)))
        while len(t.log) > self._max_len:
            t.log.popleft()
        async with t.changed:
            t.changed.notify_all()
        return str(seq)

    async def subscribe(
        self,
        topic: str,
        group: str,
        consumer: str,
        *,
        from_beginning: bool = False,
        visibility_timeout: float = 30.0,
        per_process: bool = False,  # every group here is the process's own: it ends with the process
    ) -> _MemorySubscription:
        check_name("topic", topic)
        check_name("group", group)
        check_name("consumer", consumer)
        if visibility_timeout <= 0:
            raise InvalidTopicError("visibility_timeout must be positive")
        t = self._topic(topic)
        if group not in t.groups:
            t.groups[group] = _Group(last_seq=0 if from_beginning else t.next_seq - 1)
        return _MemorySubscription(self, topic, group, consumer, visibility_timeout)

    async def close(self) -> None:
        self._closed = True
        for t in self._topics.values():
            async with t.changed:
                t.changed.notify_all()
