"""The event bus on Redis Streams (the distributed adapter; same semantics as the in-process bus).

One stream per topic (``{prefix}{topic}``), one consumer group per subscriber group:

- ``publish`` is XADD with ``MAXLEN ~ max_len`` (approximate trimming: Redis keeps whole nodes, so a stream may
  hold a little more than ``max_len``; a group created ``from_beginning`` starts at the ``max_len``-th newest
  message, so what a reader sees is bounded exactly).
- ``next`` first looks for messages a consumer of the group took and did not acknowledge within this
  subscription's visibility timeout (XAUTOCLAIM: the delivery count Redis keeps is the message's ``attempt``),
  then reads new ones (XREADGROUP, blocking in short slices so redeliveries are not held up behind the block).
  ``next_batch(max_count)`` (this adapter's own, for a consumer that handles many messages at a time: the
  positions-writer) is the same with up to ``max_count`` messages per XAUTOCLAIM or XREADGROUP, the delivery counts
  of the claimed ones read with one XPENDING of their range; ``ack_many`` acknowledges them with one XACK.
- A message delivered more than ``max_attempts`` times goes to the dead-letter stream ``{prefix}{topic}.dead``
  with the group, its id and the reason, and is acknowledged: it never blocks its group for ever.
- ``nack`` makes the message claimable at once (XCLAIM ... IDLE, JUSTID: the delivery count is unchanged until
  the next delivery).
- ``ack`` is XACK. A consumer that dies holds its pending messages only until their visibility timeout passes.
- A per-process group (``per_process=True``) is listed in the set ``{prefix}{topic}.processes``, with a key
  ``{prefix}{topic}.alive.{group}`` that expires ``process_idle`` seconds after its subscription last looked for
  messages (refreshed a few times per ``process_idle`` while it reads). ``close`` destroys the bus's own groups; a
  process that died leaves its group, and the next per-process subscription to the topic destroys every listed
  group whose key has expired. (Not XINFO CONSUMERS' idle time: before Redis 7.2 a read that finds nothing does
  not reset it, so a live consumer of a quiet topic would look gone.)
Redis being unreachable is :class:`BusUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.common.bus.port import MAX_PAYLOAD_BYTES, BusError, InvalidTopicError, Message, check_name
from services.common.redisclient import UNREACHABLE, client_options

DEFAULT_MAX_LEN = 100_000
DEFAULT_MAX_ATTEMPTS = 10
BLOCK_SLICE = 1.0  # longest XREADGROUP block, seconds: redeliveries are looked for at least this often
_FOREVER_IDLE_MS = 10**12  # what a nacked message's idle time is set to: claimable by anyone now
# A per-process group whose consumers have all been idle this long belongs to a process that is gone: far above
# BLOCK_SLICE and the longest handler (a catalog marking thousands of titles playable takes seconds).
PROCESS_IDLE = 600.0
log = logging.getLogger("marquee.bus")


class BusUnavailable(BusError):
    """Redis cannot be reached."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisSubscription:
    def __init__(
        self,
        bus: RedisBus,
        topic: str,
        group: str,
        consumer: str,
        visibility: float,
        max_attempts: int,
        *,
        per_process: bool = False,
    ) -> None:
        self._bus = bus
        self._redis: Any = bus.redis
        self._topic = topic
        self._stream = bus.stream(topic)
        self._group = group
        self._consumer = consumer
        self._visibility_ms = max(1, int(visibility * 1000))
        self._max_attempts = max_attempts
        self._cursor = "0-0"
        self._closed = False
        self._alive_key = bus.alive_key(topic, group) if per_process else None
        self._alive_at = time.monotonic()  # subscribe set the key

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while not self._closed:
            msg = await self.next(timeout=None)
            if msg is not None:
                yield msg

    async def next(self, timeout: float | None = None) -> Message | None:
        batch = await self.next_batch(1, timeout)
        return batch[0] if batch else None

    async def next_batch(self, max_count: int, timeout: float | None = None) -> list[Message]:
        """Up to ``max_count`` messages, in order: those pending past the visibility timeout (or nacked) first,
        else new ones; [] when ``timeout`` passes first (or the subscription is closed). What ``next`` is for one
        message, for a consumer that handles many at a time (the positions-writer)."""
        if max_count < 1:
            raise ValueError(f"max_count must be at least 1, not {max_count}")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._closed:
                await self._still_alive()
                redelivered = await self._claim(max_count)
                if redelivered:
                    return redelivered
                left = BLOCK_SLICE if deadline is None else min(BLOCK_SLICE, deadline - time.monotonic())
                block = min(left, self._visibility_ms / 2000)
                if block <= 0:
                    return []
                fresh = await self._read(max_count, max(1, int(block * 1000)))
                if fresh:
                    return fresh
                if deadline is not None and time.monotonic() >= deadline:
                    return []
        except UNREACHABLE as exc:
            raise BusUnavailable(f"redis is unreachable: {exc}") from exc
        return []

    async def _still_alive(self) -> None:
        """A per-process group's key, refreshed three times per ``process_idle``: the group's process is alive."""
        if self._alive_key is not None and time.monotonic() - self._alive_at >= self._bus.process_idle / 3:
            await self._bus.mark_alive(self._alive_key)
            self._alive_at = time.monotonic()

    async def _read(self, count: int, block_ms: int) -> list[Message]:
        reply = await self._redis.xreadgroup(
            self._group, self._consumer, {self._stream: ">"}, count=count, block=block_ms
        )
        return [
            self._message(entry_id, fields, attempt=1)
            for _stream, entries in reply or ()
            for entry_id, fields in entries
        ]

    async def _claim(self, count: int) -> list[Message]:
        """Up to ``count`` messages pending past the visibility timeout (or nacked), claimed for this consumer; one
        delivered more than ``max_attempts`` times goes to the dead-letter stream instead."""
        while True:
            cursor, claimed, _deleted = await self._redis.xautoclaim(
                self._stream, self._group, self._consumer, self._visibility_ms, start_id=self._cursor, count=count
            )
            self._cursor = _text(cursor)
            if not claimed:
                return []
            trimmed = [entry_id for entry_id, fields in claimed if fields is None]
            if trimmed:  # trimmed away while pending (before Redis 7): nothing left to deliver
                await self._redis.xack(self._stream, self._group, *trimmed)
            entries = [(entry_id, fields) for entry_id, fields in claimed if fields is not None]
            attempts = await self._attempts([entry_id for entry_id, _ in entries])
            messages = []
            for entry_id, fields in entries:
                attempt = attempts.get(_text(entry_id), 1)
                if attempt > self._max_attempts:
                    await self._dead_letter(entry_id, fields, attempt)
                else:
                    messages.append(self._message(entry_id, fields, attempt))
            if messages:
                return messages

    async def _attempts(self, entry_ids: list[Any]) -> dict[str, int]:
        """The delivery count Redis keeps of each of the messages just claimed (this consumer's now): one XPENDING of
        their range, then one per message the range's page left out (this consumer holds others in the range)."""
        if not entry_ids:
            return {}
        pending = await self._redis.xpending_range(
            self._stream, self._group, entry_ids[0], entry_ids[-1], len(entry_ids), consumername=self._consumer
        )
        counts = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        for entry_id in entry_ids:
            if _text(entry_id) not in counts:
                one = await self._redis.xpending_range(self._stream, self._group, entry_id, entry_id, 1)
                counts[_text(entry_id)] = int(one[0]["times_delivered"]) if one else 1
        return counts

    async def _dead_letter(self, entry_id: Any, fields: dict[bytes, bytes], attempt: int) -> None:
        reason = f"not acknowledged after {attempt - 1} deliveries (max_attempts {self._max_attempts})"
        record = {
            b"group": self._group.encode(),
            b"id": _text(entry_id).encode(),
            b"attempts": str(attempt - 1).encode(),
            b"reason": reason.encode(),
            **fields,
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._bus.dead_letter_stream(self._topic), record, maxlen=self._bus.max_len, approximate=True)
            pipe.xack(self._stream, self._group, entry_id)
            await pipe.execute()

    def _message(self, entry_id: Any, fields: dict[bytes, bytes], attempt: int) -> Message:
        key = fields.get(b"k")
        return Message(_text(entry_id), self._topic, None if key is None else key.decode(), fields[b"p"], attempt)

    async def ack(self, message: Message) -> None:
        await self.ack_many([message])

    async def ack_many(self, messages: Sequence[Message]) -> None:
        """Acknowledge every one of ``messages`` with one XACK."""
        if not messages:
            return
        try:
            await self._redis.xack(self._stream, self._group, *(m.id for m in messages))
        except UNREACHABLE as exc:
            raise BusUnavailable(f"redis is unreachable: {exc}") from exc

    async def nack(self, message: Message) -> None:
        try:
            await self._redis.xclaim(
                self._stream,
                self._group,
                self._consumer,
                0,
                [message.id],
                idle=_FOREVER_IDLE_MS,
                justid=True,
            )
        except UNREACHABLE as exc:
            raise BusUnavailable(f"redis is unreachable: {exc}") from exc
        self._cursor = "0-0"

    async def close(self) -> None:
        self._closed = True


class RedisBus:
    """An :class:`~services.common.bus.port.EventBus` on a Redis server: a client shared with other adapters (the
    caller closes it), or its own from a ``redis://`` URL."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "marquee:bus:",
        max_len: int = DEFAULT_MAX_LEN,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        process_idle: float = PROCESS_IDLE,
        owns_client: bool = False,
    ) -> None:
        self._owns_client = owns_client
        # Any: redis-py's annotations do not describe stream replies (nested lists of ids and field maps)
        self.redis: Any = client
        self.prefix = prefix
        self.max_len = max_len
        self.max_attempts = max_attempts
        self.process_idle = process_idle
        self._subscriptions: list[_RedisSubscription] = []
        self._own_groups: set[tuple[str, str]] = set()  # (topic, group) of this bus's per-process groups

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisBus:
        client = aioredis.Redis.from_url(url, **client_options(5.0))
        return cls(client, owns_client=True, **kwargs)

    def stream(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    def dead_letter_stream(self, topic: str) -> str:
        return f"{self.prefix}{topic}.dead"

    def process_groups(self, topic: str) -> str:
        """The set of ``topic``'s per-process groups."""
        return f"{self.prefix}{topic}.processes"

    def alive_key(self, topic: str, group: str) -> str:
        """The key a per-process group's subscription keeps from expiring while its process lives."""
        return f"{self.prefix}{topic}.alive.{group}"

    async def mark_alive(self, key: str) -> None:
        await self.redis.set(key, b"1", px=max(1, int(self.process_idle * 1000)))

    async def publish(self, topic: str, payload: bytes, *, key: str | None = None) -> str:
        check_name("topic", topic)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise InvalidTopicError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
        fields: dict[bytes, bytes] = {b"p": bytes(payload)}
        if key is not None:
            fields[b"k"] = key.encode()
        try:
            entry_id = await self.redis.xadd(self.stream(topic), fields, maxlen=self.max_len, approximate=True)
        except UNREACHABLE as exc:
            raise BusUnavailable(f"redis is unreachable: {exc}") from exc
        return _text(entry_id)

    async def subscribe(
        self,
        topic: str,
        group: str,
        consumer: str,
        *,
        from_beginning: bool = False,
        visibility_timeout: float = 30.0,
        per_process: bool = False,
    ) -> _RedisSubscription:
        check_name("topic", topic)
        check_name("group", group)
        check_name("consumer", consumer)
        stream = self.stream(topic)
        try:
            if per_process:
                await self._remove_groups_of_gone_processes(topic)
            start = await self._start_id(stream) if from_beginning else "$"
            with contextlib.suppress(ResponseError):  # BUSYGROUP: the group exists and keeps its position
                await self.redis.xgroup_create(stream, group, id=start, mkstream=True)
            if per_process:  # alive before it is listed: a group being made is never taken for a gone one
                await self.mark_alive(self.alive_key(topic, group))
                await self.redis.sadd(self.process_groups(topic), group)
                self._own_groups.add((topic, group))
        except UNREACHABLE as exc:
            raise BusUnavailable(f"redis is unreachable: {exc}") from exc
        sub = _RedisSubscription(
            self, topic, group, consumer, visibility_timeout, self.max_attempts, per_process=per_process
        )
        self._subscriptions.append(sub)
        return sub

    async def _remove_groups_of_gone_processes(self, topic: str) -> None:
        stream, listed = self.stream(topic), self.process_groups(topic)
        for name in await self.redis.smembers(listed):
            group = _text(name)
            if not await self.redis.exists(self.alive_key(topic, group)):
                with contextlib.suppress(ResponseError):  # the stream is gone: so is the group
                    await self.redis.xgroup_destroy(stream, group)
                await self.redis.srem(listed, group)
                log.info("removed consumer group %s of %s: its process is gone", group, topic)

    async def _start_id(self, stream: str) -> str:
        """Where a group reading from the beginning starts: before the ``max_len``-th newest message."""
        newest = await self.redis.xrevrange(stream, "+", "-", count=self.max_len + 1)
        return _text(newest[-1][0]) if len(newest) > self.max_len else "0"

    async def dead_letters(self, topic: str, count: int = 100) -> list[dict[str, str]]:
        """The newest dead-lettered messages of ``topic`` (operators' view; payloads left out)."""
        entries = await self.redis.xrevrange(self.dead_letter_stream(topic), "+", "-", count=count)
        return [
            {_text(k): _text(v) for k, v in fields.items() if k not in (b"p", b"k")} | {"dead_id": _text(entry_id)}
            for entry_id, fields in entries
        ]

    async def close(self) -> None:
        for sub in self._subscriptions:
            await sub.close()
        self._subscriptions.clear()
        for topic, group in sorted(self._own_groups):  # the process's own groups go with it
            with contextlib.suppress(*UNREACHABLE, ResponseError):  # else left to the next process to remove
                await self.redis.xgroup_destroy(self.stream(topic), group)
                await self.redis.srem(self.process_groups(topic), group)
                await self.redis.delete(self.alive_key(topic, group))
        self._own_groups.clear()
        if self._owns_client:
            await self.redis.aclose()


async def wait_for_redis(client: aioredis.Redis, timeout: float) -> None:
    """PING until it answers or ``timeout`` passes (BusUnavailable naming the address then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.ping()
            return
        except UNREACHABLE as exc:
            if time.monotonic() >= deadline:
                raise BusUnavailable(f"redis is unreachable: {exc}") from exc
            await asyncio.sleep(0.1)
