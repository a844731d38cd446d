"""Resume positions, last write wins by the client's event time: an update older than the stored one (a late or
replayed report) is not applied. Compare-and-set on the stored event time makes concurrent updates safe; the
store commits before the call returns (SQLite WAL with synchronous=FULL, ScyllaDB quorum), so an acknowledged
update survives the process being killed."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.errors import Aborted
from services.common.ids import now_micros
from services.common.store.port import MAX_QUERY_LIMIT, Row, Store
from services.playback.schema import POSITIONS

MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class Update:
    applied: bool
    row: Row


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

    async def update(
        self, account_id: str, profile_id: str, title_id: str, position_ms: int, runtime_ms: int, event_time: int
    ) -> Update:
        key = {"account_id": account_id, "profile_id": profile_id, "title_id": title_id}
        for _ in range(MAX_ATTEMPTS):
            old = await self._store.get(POSITIONS, key)
            if old is not None and old["event_time"] >= event_time:
                return Update(False, old)
            values = {
                "position_ms": position_ms,
                "runtime_ms": runtime_ms,
                "event_time": event_time,
                "finished": self.finished(position_ms, runtime_ms),
                "watch_time": now_micros(),
            }
            if old is None:
                ok = await self._store.insert(POSITIONS, {**key, **values}, if_not_exists=True)
            else:
                ok = await self._store.update(POSITIONS, key, values, if_={"event_time": old["event_time"]})
            if ok:
                return Update(True, {**key, **values})
        raise Aborted("too many concurrent position updates; try again", reason="CONCURRENT_MODIFICATION")

    async def history(self, account_id: str, profile_id: str) -> list[Row]:
        """Every title the profile watched, most recent first."""
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
        return sorted(rows, key=lambda r: (-r["watch_time"], r["title_id"]))

    async def delete(self, account_id: str, profile_id: str, title_id: str) -> bool:
        key = {"account_id": account_id, "profile_id": profile_id, "title_id": title_id}
        return await self._store.delete(POSITIONS, key, if_exists=True)
