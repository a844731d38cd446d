"""Ratings: one per profile per title (1-5 stars, a new one replaces the old), with a per-title summary
(count, total, 1..5 histogram) kept exact under concurrent writes: the rating row and the summary row are each
changed by compare-and-set, retried on conflict, so every change is counted once. Each change is published on
``catalog.rating`` for recommendations.

A change is bracketed by an operation marker (``rating_ops``, and the title in ``pending_titles``): a process
that dies between the rating write and the summary update leaves the marker, and ``repair`` (run at start)
recounts those titles' summaries from their ratings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from marquee.v1 import catalog_pb2
from services.catalog.schema import BUCKETS, PENDING_TITLES, RATING_OPS, RATING_SUMMARIES, RATINGS, bucket_of
from services.common.bus.port import EventBus
from services.common.errors import Aborted, InvalidArgument
from services.common.ids import new_id, now_micros
from services.common.names import NamePattern
from services.common.store.port import MAX_QUERY_LIMIT, Row, Store
from services.common.topics import CATALOG_RATING

RATING = NamePattern("titles/{title}/ratings/{profile}")
TITLE = NamePattern("titles/{title}")
MAX_ATTEMPTS = 200  # compare-and-set retries before giving up with ABORTED


@dataclass(frozen=True)
class Summary:
    count: int
    total: int
    histogram: tuple[int, int, int, int, int]

    def to_pb(self) -> catalog_pb2.RatingSummary:
        average = self.total / self.count if self.count else 0.0
        return catalog_pb2.RatingSummary(average=average, count=self.count, histogram=list(self.histogram))


EMPTY = Summary(0, 0, (0, 0, 0, 0, 0))


def _summary(row: Row | None) -> Summary:
    if row is None:
        return EMPTY
    h = row["histogram"]
    return Summary(row["count"], row["total"], (h[0], h[1], h[2], h[3], h[4]))


class Ratings:
    def __init__(self, store: Store, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def get(self, title_id: str, profile_id: str) -> Row | None:
        return await self._store.get(RATINGS, {"title_id": title_id, "profile_id": profile_id})

    async def summary(self, title_id: str) -> Summary:
        return _summary(await self._store.get(RATING_SUMMARIES, {"title_id": title_id}))

    async def rate(self, title_id: str, profile_id: str, account_id: str, stars: int) -> tuple[Row, Summary]:
        if not 1 <= stars <= 5:
            raise InvalidArgument("stars must be between 1 and 5", field_name="stars")
        key = {"title_id": title_id, "profile_id": profile_id}
        async with self._operation(title_id):
            for _ in range(MAX_ATTEMPTS):
                old = await self._store.get(RATINGS, key)
                values = {"account_id": account_id, "stars": stars, "update_time": now_micros()}
                row = {**key, **values}
                if old is None:
                    written = await self._store.insert(RATINGS, row, if_not_exists=True)
                else:
                    written = await self._store.update(
                        RATINGS, key, values, if_={"stars": old["stars"], "update_time": old["update_time"]}
                    )
                if written:
                    previous = old["stars"] if old else 0
                    summary = await self._apply(title_id, previous, stars)
                    await self._publish(title_id, profile_id, stars, previous)
                    return row, summary
        raise Aborted("too many concurrent changes to this rating; try again", reason="CONCURRENT_MODIFICATION")

    async def delete(self, title_id: str, profile_id: str) -> bool:
        key = {"title_id": title_id, "profile_id": profile_id}
        async with self._operation(title_id):
            for _ in range(MAX_ATTEMPTS):
                old = await self._store.get(RATINGS, key)
                if old is None:
                    return False
                if await self._store.delete(RATINGS, key, if_={"update_time": old["update_time"]}):
                    await self._apply(title_id, old["stars"], 0)
                    await self._publish(title_id, profile_id, 0, old["stars"])
                    return True
        raise Aborted("too many concurrent changes to this rating; try again", reason="CONCURRENT_MODIFICATION")

    @contextlib.asynccontextmanager
    async def _operation(self, title_id: str) -> AsyncIterator[None]:
        """Marks a rating change in progress; the marker stays if the process dies before the summary is updated."""
        op = {"title_id": title_id, "op_id": new_id()}
        await self._store.insert(PENDING_TITLES, {"bucket": bucket_of(title_id), "title_id": title_id})
        await self._store.insert(RATING_OPS, op)
        yield
        await self._store.delete(RATING_OPS, op)

    async def recount(self, title_id: str) -> Summary:
        """Rebuilds a title's summary from its ratings (exact; for repair, not for every write)."""
        histogram = [0, 0, 0, 0, 0]
        after = None
        while True:
            page = await self._store.query(RATINGS, {"title_id": title_id}, limit=MAX_QUERY_LIMIT, after=after)
            for r in page.rows:
                histogram[r["stars"] - 1] += 1
            if page.next is None:
                break
            after = page.next
        count, total = sum(histogram), sum((i + 1) * n for i, n in enumerate(histogram))
        row = await self._store.get(RATING_SUMMARIES, {"title_id": title_id})
        version = (row["version"] if row else 0) + 1
        await self._store.insert(
            RATING_SUMMARIES,
            {"title_id": title_id, "version": version, "count": count, "total": total, "histogram": histogram},
        )
        return Summary(count, total, (histogram[0], histogram[1], histogram[2], histogram[3], histogram[4]))

    async def repair(self) -> list[str]:
        """Recounts the titles a crash left with rating changes in progress (call before serving)."""
        repaired = []
        for bucket in range(BUCKETS):
            page = await self._store.query(PENDING_TITLES, {"bucket": bucket}, limit=MAX_QUERY_LIMIT)
            for pending in page.rows:
                title_id = pending["title_id"]
                ops = await self._store.query(RATING_OPS, {"title_id": title_id}, limit=MAX_QUERY_LIMIT)
                if ops.rows:
                    await self.recount(title_id)
                    repaired.append(title_id)
                    for op in ops.rows:
                        await self._store.delete(RATING_OPS, op)
                await self._store.delete(PENDING_TITLES, pending)
        return repaired

    async def _apply(self, title_id: str, removed: int, added: int) -> Summary:
        """Moves one rating from ``removed`` stars to ``added`` stars (0: none) in the title's summary."""
        key = {"title_id": title_id}
        for _ in range(MAX_ATTEMPTS):
            row = await self._store.get(RATING_SUMMARIES, key)
            s = _summary(row)
            histogram = list(s.histogram)
            count, total = s.count, s.total
            if removed:
                histogram[removed - 1] -= 1
                count, total = count - 1, total - removed
            if added:
                histogram[added - 1] += 1
                count, total = count + 1, total + added
            values = {"count": count, "total": total, "histogram": histogram}
            if row is None:
                ok = await self._store.insert(RATING_SUMMARIES, {**key, "version": 1, **values}, if_not_exists=True)
            else:
                ok = await self._store.update(
                    RATING_SUMMARIES, key, {**values, "version": row["version"] + 1}, if_={"version": row["version"]}
                )
            if ok:
                return Summary(count, total, (histogram[0], histogram[1], histogram[2], histogram[3], histogram[4]))
        raise Aborted("too many concurrent ratings of this title; try again", reason="CONCURRENT_MODIFICATION")

    async def _publish(self, title_id: str, profile_id: str, stars: int, previous: int) -> None:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        event = catalog_pb2.TitleRatedEvent(
            rating=RATING.format(title=title_id, profile=profile_id),
            title=TITLE.format(title=title_id),
            stars=stars,
            previous_stars=previous,
            event_time=now,
        )
        await self._bus.publish(CATALOG_RATING, event.SerializeToString(), key=title_id)
