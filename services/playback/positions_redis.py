"""Resume positions on Redis with write-behind to the store (``[services.playback] positions = "redis"``).

The hot path never waits for the store. UpdatePosition is one Lua script on the position's hash
(``<prefix>pos:<account>:<profile>:<title>``) that applies the report only if its event time is newer than the
stored one (last write wins by event time, as the store decides it) and, when it applied it, appends the
``playback.update`` event to the bus's stream in the same script: Redis runs a script whole, so an acknowledged
update is never in Redis without its event, nor the other way round. ``applied`` and the row answered are what the
store path answers: an equal event time is answered as applied (the stored time is the report's) and writes
nothing. A hash that is missing (never written, or expired) is first seeded from the store, so a report older
than the store's position is refused as it would be there.

GetPosition and a resume read the hash, then the store on a miss (and seed the hash from it). Every read and write
pushes the key's expiry to ``idle_ttl`` seconds ahead: Redis holds what is being watched, the store keeps the
truth. A deleted position is kept as a tombstone hash (``deleted`` = 1, at the delete's time) until it idles out,
so an older report arriving after the delete is refused here as the store refuses it.

The consumer group ``positions-writer`` (one for every replica) persists the events to the store with the store
path's last-write-wins write (:meth:`Positions.write`): the position and the session's watch history entry, with
the event time as write time. It is idempotent: an event applied twice, or after a newer one, changes nothing,
because the store keeps the row with the newest write time whichever order the writes come in. The event's
``watch_time`` in the store is the time Redis appended it (its stream id).

The writer works in batches, so that a burst costs a few round trips instead of four (and two store writes) per
event: it reads up to ``WRITE_BATCH`` events at once (one XAUTOCLAIM of redelivered ones, else one XREADGROUP),
keeps per (profile, title, session) only the newest event by event time, checks the tombstones of the batch's
positions in one pipelined round trip, writes what is left concurrently (at most ``WRITE_CONCURRENCY`` at a time)
and acknowledges the whole batch with one XACK. Coalescing is exact: the position row is keyed by (profile,
title) and the history entry by (profile, session start, title), and the store keeps per row the write with the
newest write time, so a session's older events would leave neither row changed whatever order they were written
in; one write per session (not per title) keeps every session's history entry. The tombstone check loses nothing
either: a tombstone at or after a session's newest event is after its older ones too. A batch with a failed
write is not acknowledged: it is redelivered after the visibility timeout and written again (harmless).

Durability: an update is acknowledged once Redis has run the script, so it lasts as long as Redis keeps it: run
Redis with AOF (``appendfsync always``: nothing acknowledged is lost; ``everysec``: at most the last second of
acknowledged writes on a crash of the Redis host). See docs/storage.md. When Redis cannot be reached, the calls
fail with UNAVAILABLE (reason POSITIONS_UNAVAILABLE), never falling back to a store write that Redis would not see.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from google.protobuf.message import DecodeError
from redis.exceptions import ResponseError

from marquee.v1 import playback_pb2
from services.common.bus.redis import BusUnavailable, RedisBus
from services.common.errors import InvalidArgument, Unavailable
from services.common.ids import now_micros
from services.common.names import NamePattern
from services.common.redisclient import UNREACHABLE
from services.common.store.port import Page, PagingState, Row, Store, StoreUnavailable
from services.common.tasks import gather_bounded
from services.common.topics import PLAYBACK_UPDATE
from services.playback.positions import Positions, Report, Update, update_event
from services.playback.schema import SESSIONS

log = logging.getLogger("marquee.playback.positions")

RETRY_AFTER = 1.0
WRITER_GROUP = "positions-writer"
_FIELDS = ("event_time", "position_ms", "runtime_ms", "finished", "watch_time", "deleted")
_MISS = -1
_SESSIONS_KEPT = 10_000  # session start times the writer remembers (one store read per session otherwise)
WRITE_BATCH = 256  # events the writer reads (and acknowledges) at a time
WRITE_CONCURRENCY = 64  # store writes of a batch in flight at once
WRITE_VISIBILITY = 30.0  # seconds before a batch the writer did not acknowledge goes to another writer

PROFILE = NamePattern("accounts/{account}/profiles/{profile}")
TITLE = NamePattern("titles/{title}")
SESSION = NamePattern("playbackSessions/{session}")

# KEYS[1]: the position hash, KEYS[2]: the playback.update stream.
# ARGV: 1 event_time, 2 position_ms, 3 runtime_ms, 4 finished (0/1), 5 watch_time, 6 idle (ms), 7 event payload,
# 8 event key, 9 stream max length, 10 the seed: '' (none read yet), '-' (the store has none) or the store's event
# time, then 11 position_ms, 12 runtime_ms, 13 finished, 14 watch_time of the store's row.
# Returns {-1} when the hash is missing and no seed was given, {1} when applied, {0, fields} when not.
_UPDATE = """
local stored = redis.call('HGET', KEYS[1], 'event_time')
if not stored then
  if ARGV[10] == '' then return {-1} end
  if ARGV[10] ~= '-' then
    redis.call('HSET', KEYS[1], 'event_time', ARGV[10], 'position_ms', ARGV[11], 'runtime_ms', ARGV[12],
      'finished', ARGV[13], 'watch_time', ARGV[14], 'deleted', '0')
    stored = ARGV[10]
  end
end
if stored and tonumber(stored) >= tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {0, redis.call('HMGET', KEYS[1], 'event_time', 'position_ms', 'runtime_ms', 'finished', 'watch_time',
    'deleted')}
end
redis.call('HSET', KEYS[1], 'event_time', ARGV[1], 'position_ms', ARGV[2], 'runtime_ms', ARGV[3],
  'finished', ARGV[4], 'watch_time', ARGV[5], 'deleted', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', 'p', ARGV[7], 'k', ARGV[8])
return {1}
"""

# KEYS[1]: the position hash; ARGV[1]: idle (ms). The hash's fields in _FIELDS order (all nil when it is missing),
# its idle expiry slid forward: a read in one call, not a pipeline of two.
_GET = f"""
local values = redis.call('HMGET', KEYS[1], {", ".join(f"'{field}'" for field in _FIELDS)})
if values[1] then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return values
"""

# KEYS[1]: the position hash; ARGV: 1 event_time, 2 position_ms, 3 runtime_ms, 4 finished, 5 watch_time, 6 idle.
# Seeds a missing hash from the store's row (a read's fill); an existing hash is newer or equal and is kept.
_FILL = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'event_time', ARGV[1], 'position_ms', ARGV[2], 'runtime_ms', ARGV[3],
    'finished', ARGV[4], 'watch_time', ARGV[5], 'deleted', '0')
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS[1]: the position hash; ARGV: 1 the delete's time, 2 idle. A tombstone, unless a newer report is stored.
_DELETE = """
local stored = redis.call('HGET', KEYS[1], 'event_time')
if stored and tonumber(stored) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'event_time', ARGV[1], 'position_ms', '0', 'runtime_ms', '0', 'finished', '0',
  'watch_time', ARGV[1], 'deleted', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable(
        f"the positions cache (redis) is unreachable: {exc}", reason="POSITIONS_UNAVAILABLE", retry_after=RETRY_AFTER
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class _Event:
    """A ``playback.update`` event read from the stream: its stream id and the report it carries (whose session
    start, ``started``, the writer looks up)."""

    message_id: str
    report: Report

    @classmethod
    def of(cls, event: playback_pb2.PlaybackUpdateEvent, message_id: str) -> _Event:
        """InvalidArgument when a name is malformed."""
        ids = PROFILE.parse(event.profile, "profile")
        report = Report(
            account_id=ids["account"],
            profile_id=ids["profile"],
            title_id=TITLE.parse(event.title, "title")["title"],
            session_id=SESSION.parse(event.session, "session")["session"],
            started=0,
            position_ms=event.position.ToMilliseconds(),
            runtime_ms=event.runtime.ToMilliseconds(),
            event_time=event.event_time.ToMicroseconds(),
        )
        return cls(message_id, report)

    @property
    def session_key(self) -> tuple[str, str, str, str]:
        """What a batch is coalesced by: one write per session of a title (its history entry, and the position)."""
        r = self.report
        return r.account_id, r.profile_id, r.title_id, r.session_id

    @property
    def order(self) -> tuple[int, int, int]:
        """Newer is greater: the event time, then the stream id (an id that is not a stream id comes first)."""
        millis, _, seq = self.message_id.partition("-")
        if millis.isdigit() and seq.isdigit():
            return self.report.event_time, int(millis), int(seq)
        return self.report.event_time, -1, -1

    @property
    def watch_time(self) -> int:
        """When Redis appended the event (its stream id's milliseconds), in microseconds."""
        millis = self.message_id.split("-", 1)[0]
        return int(millis) * 1000 if millis.isdigit() else self.report.event_time


class RedisPositions:
    """Positions on Redis, persisted to the store by :meth:`write_behind` (the ``positions-writer`` consumer); the
    watch history and the continue-watching list are read from the store (they trail Redis by the writer's lag)."""

    def __init__(self, store: Store, positions: Positions, bus: RedisBus, *, prefix: str, idle_ttl: float) -> None:
        self._store = store
        self._positions = positions
        self._bus = bus
        self._redis: Any = bus.redis
        self._stream = bus.stream(PLAYBACK_UPDATE)
        self._prefix = prefix
        self._idle_ms = max(1, int(idle_ttl * 1000))
        self._get = self._redis.register_script(_GET)
        self._update = self._redis.register_script(_UPDATE)
        self._fill = self._redis.register_script(_FILL)
        self._delete = self._redis.register_script(_DELETE)
        self._starts: OrderedDict[str, int] = OrderedDict()

    @property
    def key_prefix(self) -> str:
        """What every position hash's key starts with: ``key_prefix + f"{account}:{profile}:{title}"``."""
        return f"{self._prefix}pos:"

    @property
    def stream(self) -> str:
        """The ``playback.update`` stream the update script appends to."""
        return self._stream

    @property
    def stream_max_len(self) -> int:
        return self._bus.max_len

    @property
    def idle_ms(self) -> int:
        return self._idle_ms

    update_script = _UPDATE  # for the native front, which runs the same script

    def key(self, account_id: str, profile_id: str, title_id: str) -> str:
        return f"{self.key_prefix}{account_id}:{profile_id}:{title_id}"

    def finished(self, position_ms: int, runtime_ms: int) -> bool:
        return self._positions.finished(position_ms, runtime_ms)

    @staticmethod
    def _row(account_id: str, profile_id: str, title_id: str, values: list[Any]) -> tuple[Row, bool]:
        """The position row from the hash's fields (in ``_FIELDS`` order), and whether it is a tombstone."""
        event_time, position_ms, runtime_ms, finished, watch_time, deleted = (_text(v) for v in values)
        row = {
            "account_id": account_id,
            "profile_id": profile_id,
            "title_id": title_id,
            "position_ms": int(position_ms),
            "runtime_ms": int(runtime_ms),
            "event_time": int(event_time),
            "finished": finished == "1",
            "watch_time": int(watch_time),
        }
        return row, deleted == "1"

    async def get(self, account_id: str, profile_id: str, title_id: str) -> Row | None:
        key = self.key(account_id, profile_id, title_id)
        try:
            values = await self._get(keys=[key], args=[self._idle_ms])
            if values[0] is not None:
                row, deleted = self._row(account_id, profile_id, title_id, values)
                return None if deleted else row
            stored = await self._positions.get(account_id, profile_id, title_id)
            if stored is not None:
                await self._fill(keys=[key], args=[*self._args(stored), self._idle_ms])
            return stored
        except UNREACHABLE as exc:
            raise _unavailable(exc) from exc

    @staticmethod
    def _args(row: Row) -> list[Any]:
        return [row["event_time"], row["position_ms"], row["runtime_ms"], int(row["finished"]), row["watch_time"]]

    async def update(self, report: Report) -> Update:
        """Apply the report in Redis if it is newer than the stored position, appending its ``playback.update``
        event to the stream with it: ``published`` is True."""
        row, _ = self._positions.rows(report, now_micros())
        event = update_event(report, row["finished"])
        key = self.key(report.account_id, report.profile_id, report.title_id)
        args = [*self._args(row), self._idle_ms, event, report.profile_id, self._bus.max_len]
        try:
            reply = await self._update(keys=[key, self._stream], args=[*args, ""])
            if reply[0] == _MISS:
                stored = await self._positions.get(report.account_id, report.profile_id, report.title_id)
                seed = ["-", 0, 0, 0, 0] if stored is None else self._args(stored)
                reply = await self._update(keys=[key, self._stream], args=[*args, *seed])
        except UNREACHABLE as exc:
            raise _unavailable(exc) from exc
        if reply[0] == 1:
            return Update(True, row, published=True)
        kept, deleted = self._row(report.account_id, report.profile_id, report.title_id, reply[1])
        if deleted:  # deleted by a later call, as the store answers it
            return Update(False, {**row, "position_ms": 0, "finished": False}, published=True)
        return Update(kept["event_time"] == report.event_time, kept, published=True)

    async def in_progress(self, account_id: str, profile_id: str) -> list[Row]:
        return await self._positions.in_progress(account_id, profile_id)

    async def history(self, account_id: str, profile_id: str, limit: int, after: PagingState | None) -> Page:
        return await self._positions.history(account_id, profile_id, limit, after)

    async def delete(self, account_id: str, profile_id: str, title_id: str) -> bool:
        """Forget a title: a tombstone in Redis at the delete's time (at or after the newest report), then the
        store's rows. False when there was nothing to forget."""
        key = self.key(account_id, profile_id, title_id)
        cached = await self.get(account_id, profile_id, title_id)
        at = max(now_micros(), cached["event_time"] if cached else 0)
        try:
            await self._delete(keys=[key], args=[at, self._idle_ms])
        except UNREACHABLE as exc:
            raise _unavailable(exc) from exc
        return await self._positions.delete(account_id, profile_id, title_id, at=at) or cached is not None

    async def _started(self, session_id: str) -> int | None:
        started = self._starts.get(session_id)
        if started is None:
            session = await self._store.get(SESSIONS, {"session_id": session_id})
            if session is None:
                return None
            started = int(session["start_time"])
            self._starts[session_id] = started
            while len(self._starts) > _SESSIONS_KEPT:
                self._starts.popitem(last=False)
        return started

    async def persist(self, event: playback_pb2.PlaybackUpdateEvent, message_id: str) -> bool:
        """Write one ``playback.update`` event to the store: :meth:`persist_many` of that event alone. False when it
        was skipped (older than a tombstone, its session unknown, or malformed)."""
        return await self.persist_many([(event, message_id)]) == 1

    async def persist_many(self, events: Iterable[tuple[playback_pb2.PlaybackUpdateEvent, str]]) -> int:
        """Write ``playback.update`` events (each with its stream id) to the store: per (profile, title, session)
        only the newest by event time (ties: the later stream id), each as the position and its session's history
        entry with the event time as write time. Coalescing is exact: the store keeps, per row, the write with the
        newest write time, so the older events of a session would change neither row, whatever the order. Idempotent:
        applying an event twice, or after a newer one, changes nothing. An event at or before a delete still in Redis
        (a tombstone) is skipped, as is one whose session is not in the store or whose names are malformed (logged).
        The writes run concurrently (at most ``WRITE_CONCURRENCY`` at a time); when one fails, the others are
        finished, then its error is raised. The number of events written."""
        newest: dict[tuple[str, str, str, str], _Event] = {}
        for event, message_id in events:
            try:
                decoded = _Event.of(event, message_id)
            except InvalidArgument as exc:
                log.warning("dropping malformed playback.update message %s: %s", message_id, exc)
                continue
            kept = newest.get(decoded.session_key)
            if kept is None or decoded.order > kept.order:
                newest[decoded.session_key] = decoded
        live = await self._not_deleted(list(newest.values()))
        sessions = list(dict.fromkeys(e.report.session_id for e in live))
        found = await gather_bounded([partial(self._started, s) for s in sessions], WRITE_CONCURRENCY)
        starts = dict(zip(sessions, found, strict=True))
        reports = []
        for e in live:
            session_id = e.report.session_id
            started = starts[session_id]
            if started is None:
                log.warning("playback.update %s: session %s is not in the store; skipped", e.message_id, session_id)
            else:
                reports.append((replace(e.report, started=started), e.watch_time))
        await gather_bounded(
            [partial(self._positions.write, report, watch_time) for report, watch_time in reports], WRITE_CONCURRENCY
        )
        return len(reports)

    async def _not_deleted(self, events: list[_Event]) -> list[_Event]:
        """The events not at or before a tombstone of their position: one HMGET per position, in one round trip."""
        keyed = [(self.key(e.report.account_id, e.report.profile_id, e.report.title_id), e) for e in events]
        keys = list(dict.fromkeys(key for key, _ in keyed))
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "event_time", "deleted")
            replies = await pipe.execute()
        deleted_at = {
            key: int(_text(event_time))
            for key, (event_time, deleted) in zip(keys, replies, strict=True)
            if deleted is not None and _text(deleted) == "1"
        }
        return [e for key, e in keyed if deleted_at.get(key, -1) < e.report.event_time]

    async def write_behind(self, consumer: str, *, visibility_timeout: float = WRITE_VISIBILITY) -> None:
        """The ``positions-writer`` consumer: persists every event of the stream to the store until cancelled, in
        batches: it reads up to ``WRITE_BATCH`` events at a time (what has piled up since its last read), writes
        them with :meth:`persist_many` (coalesced: one write per session's newest event) and acknowledges the batch
        with one XACK once all are written. A batch not acknowledged (a write failed) is redelivered after
        ``visibility_timeout`` seconds, to this writer or another: writing it again is harmless. The group starts
        at the beginning of the retained stream when it is first made, so events appended before any writer ran
        are persisted too. While Redis or the store cannot be reached it retries, every ``RETRY_AFTER`` seconds."""
        while True:
            try:
                await self._follow(consumer, visibility_timeout)
            except (BusUnavailable, *UNREACHABLE, StoreUnavailable) as exc:
                log.warning("positions-writer: %s; retrying in %.1f s", exc, RETRY_AFTER)
                await asyncio.sleep(RETRY_AFTER)

    async def _follow(self, consumer: str, visibility_timeout: float = WRITE_VISIBILITY) -> None:
        """Persist batches until the subscription closes; a failed write's error is raised with its batch not
        acknowledged."""
        subscription = await self._bus.subscribe(
            PLAYBACK_UPDATE, WRITER_GROUP, consumer, from_beginning=True, visibility_timeout=visibility_timeout
        )
        try:
            while batch := await subscription.next_batch(WRITE_BATCH):
                events = []
                for message in batch:
                    try:
                        events.append((playback_pb2.PlaybackUpdateEvent.FromString(message.payload), message.id))
                    except DecodeError as exc:
                        log.warning("dropping malformed playback.update message %s: %s", message.id, exc)
                await self.persist_many(events)
                await subscription.ack_many(batch)
        finally:
            await subscription.close()

    async def lag(self) -> int:
        """Events of the stream the writer group has not acknowledged yet or not read yet (tests, operators): its
        pending count and its ``lag``, which Redis keeps (O(1)) while no entry was ever deleted from the stream
        (trimming is not deleting); after an XDEL Redis's lag is an estimate (Redis 7.0 even counts a deleted
        entry as unread once the group has read past it), so then the unread entries are counted."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xinfo_groups(self._stream)
            pipe.xinfo_stream(self._stream)
            try:
                groups, stream = await pipe.execute()
            except ResponseError:  # no stream yet
                return 0
        for group in groups:
            if _text(group["name"]) == WRITER_GROUP:
                lag = group.get("lag")
                if lag is None or _text(stream.get("max-deleted-entry-id", b"0-0")) != "0-0":
                    lag = len(await self._redis.xrange(self._stream, "(" + _text(group["last-delivered-id"]), "+"))
                return int(group["pending"]) + int(lag)
        return int(stream["length"])
