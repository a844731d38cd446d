"""Resume positions and watch history, last write wins by the client's event time.

Every report is written with the client's event time as its write time (CQL ``USING TIMESTAMP``; the SQLite
store compares the same write times), so an update older than the stored one (a late or replayed report) never
replaces a newer one, whichever replica or process writes it and without a read-then-compare-and-set loop. The
call then reads the position back to say whether its own report is the one stored. An event time ahead of the
server's clock by more than ``MAX_CLOCK_SKEW_MS`` is clamped to the server's clock plus that skew
(:func:`clamp_event_time`): a device whose clock runs minutes fast would otherwise store times no correct device
can beat until real time catches up, blocking their updates. The store commits before the call returns (SQLite
WAL with synchronous=FULL, CQL at LOCAL_QUORUM), so an acknowledged update survives the process being killed.

The watch history is a time series per profile, newest first: one entry per session, so a rewatch is a new
entry; a page of it is one slice of the partition."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from marquee.v1 import playback_pb2
from services.common.ids import now_micros
from services.common.store.port import MAX_QUERY_LIMIT, Page, PagingState, Row, Store
from services.playback.schema import POSITIONS, WATCH_HISTORY

# How far a client's event time may run ahead of the server's clock before it is clamped (clock skew). Small:
# after a fast device's update, another device's update can be refused as older for at most this long.
MAX_CLOCK_SKEW_MS = 1000


def clamp_event_time(event_micros: int, now_micros: int) -> int:
    """``event_micros``, or the server's clock plus the allowed skew when the client's clock is further ahead."""
    return min(event_micros, now_micros + MAX_CLOCK_SKEW_MS * 1000)


@dataclass(frozen=True)
class Update:
    applied: bool
    row: Row
    published: bool = False  # the update's event is on ``playback.update`` already (the Redis write-behind path)


@dataclass(frozen=True)
class Report:
    """One position report of a session."""

    account_id: str
    profile_id: str
    title_id: str
    session_id: str
    started: int  # the session's start, microseconds: its watch history entry
    position_ms: int
    runtime_ms: int
    event_time: int
    region: str = ""  # where the session plays (the event's region)


def update_event(report: Report, finished: bool) -> bytes:
    """The ``playback.update`` event (marquee.v1.PlaybackUpdateEvent) announcing the report once applied."""
    position, runtime, event_time = Duration(), Duration(), Timestamp()
    position.FromMilliseconds(report.position_ms)
    runtime.FromMilliseconds(report.runtime_ms)
    event_time.FromMicroseconds(report.event_time)
    return playback_pb2.PlaybackUpdateEvent(
        session=f"playbackSessions/{report.session_id}",
        profile=f"accounts/{report.account_id}/profiles/{report.profile_id}",
        title=f"titles/{report.title_id}",
        position=position,
        runtime=runtime,
        event_time=event_time,
        finished=finished,
        region=report.region,
    ).SerializeToString()


class Positions:
    def __init__(self, store: Store, finished_fraction: float) -> None:
        self._store = store
        self._finished = finished_fraction

    def finished(self, position_ms: int, runtime_ms: int) -> bool:
        return runtime_ms > 0 and position_ms >= self._finished * runtime_ms

    async def get(self, account_id: str, profile_id: str, title_id: str) -> Row | None:
        return await self._store.get(
            POSITIONS, {"account_id": account_id, "profile_id": profile_id, "title_id": title_id}
        )

    def rows(self, report: Report, watch_time: int) -> tuple[Row, Row]:
        """The position row and the watch history entry a report writes."""
        key = {"account_id": report.account_id, "profile_id": report.profile_id, "title_id": report.title_id}
        finished = self.finished(report.position_ms, report.runtime_ms)
        row = {
            **key,
            "position_ms": report.position_ms,
            "runtime_ms": report.runtime_ms,
            "event_time": report.event_time,
            "finished": finished,
            "watch_time": watch_time,
        }
        entry = {
            "account_id": report.account_id,
            "profile_id": report.profile_id,
            "watched_at": report.started,
            "title_id": report.title_id,
            "session_id": report.session_id,
            "position_ms": report.position_ms,
            "runtime_ms": report.runtime_ms,
            "event_time": report.event_time,
            "finished": finished,
        }
        return row, entry

    async def write(self, report: Report, watch_time: int) -> Row:
        """Write the report (and its history entry) with its event time as write time: last write wins, so
        writing a report twice, or after a newer one, changes nothing. Returns the position row written."""
        row, entry = self.rows(report, watch_time)
        await asyncio.gather(
            self._store.insert(POSITIONS, row, timestamp=report.event_time),
            self._store.insert(WATCH_HISTORY, entry, timestamp=report.event_time),
        )
        return row

    async def update(self, report: Report) -> Update:
        """Write the report and read the position back: applied when it is the stored one. Its ``playback.update``
        event (:func:`update_event`) is the caller's to publish on this path (``published`` is False)."""
        row = await self.write(report, now_micros())
        key = {"account_id": report.account_id, "profile_id": report.profile_id, "title_id": report.title_id}
        stored = await self._store.get(POSITIONS, key)
        if stored is None:  # deleted by a later call (a delete takes effect at the time it is made)
            return Update(False, {**row, "position_ms": 0, "finished": False})
        return Update(stored["event_time"] == report.event_time, stored)

    async def in_progress(self, account_id: str, profile_id: str) -> list[Row]:
        """Titles started and not finished, most recently reported first (one per title)."""
        rows: list[Row] = []
        after = None
        while True:
            page = await self._store.query(
                POSITIONS, {"account_id": account_id, "profile_id": profile_id}, limit=MAX_QUERY_LIMIT, after=after
            )
            rows += page.rows
            if page.next is None:
                break
            after = page.next
        rows = [r for r in rows if not r["finished"] and r["position_ms"] > 0]
        return sorted(rows, key=lambda r: (-r["watch_time"], r["title_id"]))

    async def history(self, account_id: str, profile_id: str, limit: int, after: PagingState | None) -> Page:
        """One page of the profile's watch history, newest first."""
        return await self._store.query(
            WATCH_HISTORY, {"account_id": account_id, "profile_id": profile_id}, limit=limit, after=after
        )

    async def delete(self, account_id: str, profile_id: str, title_id: str, *, at: int = 0) -> bool:
        """Forget a title: every history entry of it and its resume position, at ``at`` (microseconds) or later.
        False when there was none."""
        partition = {"account_id": account_id, "profile_id": profile_id}
        key = {**partition, "title_id": title_id}
        stored = await self._store.get(POSITIONS, key)
        if stored is not None or at:  # at its event time or later: an event time may run ahead of our clock
            when = max(now_micros(), at, stored["event_time"] if stored else 0)
            await self._store.delete(POSITIONS, key, timestamp=when)
        found = stored is not None
        after = None
        while True:
            page = await self._store.query(WATCH_HISTORY, partition, limit=MAX_QUERY_LIMIT, after=after)
            for r in page.rows:
                if r["title_id"] == title_id:
                    entry = {**partition, "watched_at": r["watched_at"], "title_id": title_id}
                    await self._store.delete(WATCH_HISTORY, entry, timestamp=max(now_micros(), at, r["event_time"]))
                    found = True
            if page.next is None:
                return found
            after = page.next
