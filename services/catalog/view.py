"""The catalog as the service reads it: every title row in memory, kept sorted for each browse order, and the
tantivy search index over the same rows. Loaded from the store at start (so the index is never stale after a
restart) and updated write by write, including writes made by other replicas (``catalog.title`` events).

Browse pages are keyset pages: a page token holds the sort key of the last title shown, so titles added or
removed between pages cause no duplicates and no gaps."""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Callable
from typing import Any

from marquee.native import TitleIndex
from marquee.v1 import catalog_pb2
from services.catalog.schema import BUCKETS, TITLES, TITLES_BY_BUCKET, TITLES_BY_MEDIA, bucket_of
from services.catalog.titles import TitleFilter, index_doc, to_pb, words_of
from services.common.store.port import MAX_QUERY_LIMIT, Row, Store

SortKey = tuple[Any, ...]
ORDERS: dict[int, Callable[[Row], SortKey]] = {
    catalog_pb2.TITLE_ORDER_POPULARITY: lambda r: (-(r["popularity"] or 0.0), r["title_id"]),
    catalog_pb2.TITLE_ORDER_RELEASE_YEAR: lambda r: (-(r["release_year"] or 0), r["title_id"]),
    catalog_pb2.TITLE_ORDER_DISPLAY_NAME: lambda r: (r["display_name"].casefold(), r["title_id"]),
    catalog_pb2.TITLE_ORDER_RECENTLY_ADDED: lambda r: (-r["create_time"], r["title_id"]),
}


class CatalogView:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.rows: dict[str, Row] = {}
        self._sorted: dict[int, list[tuple[SortKey, str]]] = {order: [] for order in ORDERS}
        self.index = TitleIndex()
        # built on first use, dropped when the title changes: most reads are of a few thousand popular titles
        self._pb: dict[str, catalog_pb2.Title] = {}
        self._words: dict[str, dict[str, frozenset[str]]] = {}

    async def load(self, legacy_media: tuple[str, ...] = ()) -> int:
        """Every title from the store; titles imported before the listing existed are listed now."""
        ids: list[str] = []
        for bucket in range(BUCKETS):
            after = None
            while True:
                page = await self._store.query(TITLES_BY_BUCKET, {"bucket": bucket}, limit=MAX_QUERY_LIMIT, after=after)
                ids += [r["title_id"] for r in page.rows]
                if page.next is None:
                    break
                after = page.next
        if not ids and legacy_media:
            ids = await self._backfill_listing(legacy_media)
        rows = [r for r in await asyncio.gather(*(self._store.get(TITLES, {"title_id": i}) for i in ids)) if r]
        self.rows = {r["title_id"]: r for r in rows}
        self._pb.clear()
        self._words.clear()
        for order, key in ORDERS.items():
            self._sorted[order] = sorted((key(r), r["title_id"]) for r in rows)
        await asyncio.to_thread(self.index.clear)
        for start in range(0, len(rows), 2000):
            docs = json.dumps([index_doc(r) for r in rows[start : start + 2000]])
            await asyncio.to_thread(self.index.upsert, docs)
        return len(rows)

    async def _backfill_listing(self, media: tuple[str, ...]) -> list[str]:
        ids: list[str] = []
        for media_id in media:
            page = await self._store.query(TITLES_BY_MEDIA, {"media_id": media_id}, limit=MAX_QUERY_LIMIT)
            ids += [r["title_id"] for r in page.rows]
        if ids:
            await self._store.insert_many(TITLES_BY_BUCKET, [{"bucket": bucket_of(i), "title_id": i} for i in ids])
        return ids

    async def refresh(self, title_id: str) -> Row | None:
        """Re-reads one title from the store into memory and the index (deleted if it is gone)."""
        row = await self._store.get(TITLES, {"title_id": title_id})
        if row is None:
            await self.remove(title_id)
        else:
            await self.put(row)
        return row

    async def refresh_many(self, title_ids: list[str]) -> None:
        """Re-reads many titles at once: one search-index update for all of them."""
        rows = await asyncio.gather(*(self._store.get(TITLES, {"title_id": i}) for i in title_ids))
        found = [r for r in rows if r is not None]
        for title_id, row in zip(title_ids, rows, strict=True):
            if row is None:
                await self.remove(title_id)
        for row in found:
            self._place(row)
        for start in range(0, len(found), 2000):
            docs = json.dumps([index_doc(r) for r in found[start : start + 2000]])
            await asyncio.to_thread(self.index.upsert, docs)

    async def put(self, row: Row) -> None:
        self._place(row)
        await asyncio.to_thread(self.index.upsert, json.dumps([index_doc(row)]))

    def _place(self, row: Row) -> None:
        """The row in memory and in every browse order (not in the search index)."""
        title_id = row["title_id"]
        old = self.rows.get(title_id)
        for order, key in ORDERS.items():
            entries = self._sorted[order]
            if old is not None:
                i = bisect.bisect_left(entries, (key(old), title_id))
                if i < len(entries) and entries[i][1] == title_id:
                    entries.pop(i)
            bisect.insort(entries, (key(row), title_id))
        self.rows[title_id] = row
        self._pb.pop(title_id, None)
        self._words.pop(title_id, None)

    async def remove(self, title_id: str) -> None:
        old = self.rows.pop(title_id, None)
        self._pb.pop(title_id, None)
        self._words.pop(title_id, None)
        if old is None:
            return
        for order, key in ORDERS.items():
            entries = self._sorted[order]
            i = bisect.bisect_left(entries, (key(old), title_id))
            if i < len(entries) and entries[i][1] == title_id:
                entries.pop(i)
        await asyncio.to_thread(self.index.delete, [title_id])

    def page(self, f: TitleFilter, order: int, size: int, after: SortKey | None) -> tuple[list[Row], SortKey | None]:
        """Up to ``size`` titles passing ``f`` in ``order`` after the key ``after``; and the key to go on from."""
        entries = self._sorted[order]
        start = 0 if after is None else bisect.bisect_right(entries, (after, "\U0010ffff"))
        out: list[Row] = []
        for key, title_id in entries[start:]:
            row = self.rows[title_id]
            if f.matches(row):
                out.append(row)
                if len(out) == size:
                    return out, key
        return out, None

    def title(self, title_id: str) -> catalog_pb2.Title:
        """The API form of a title (without its rating summary), built once per version of the title."""
        cached = self._pb.get(title_id)
        if cached is None:
            cached = self._pb[title_id] = to_pb(self.rows[title_id])
        return cached

    def words(self, title_id: str) -> dict[str, frozenset[str]]:
        """The words of each searchable field of a title (for telling which fields a query matched)."""
        cached = self._words.get(title_id)
        if cached is None:
            t = self.title(title_id)
            fields = {
                "display_name": t.display_name,
                "original_title": t.original_title,
                "description": t.description,
                "cast": " ".join(p.display_name for p in t.cast),
                "directors": " ".join(p.display_name for p in t.directors),
                "genres": " ".join(t.genres),
                "release_year": str(t.release_year or ""),
            }
            cached = self._words[title_id] = {k: frozenset(words_of(v)) for k, v in fields.items()}
        return cached

    def count(self, f: TitleFilter) -> int:
        return self.index.count(json.dumps(f.index_json()))

    def genres(self) -> list[str]:
        return sorted({g for r in self.rows.values() for g in r["genres"]}, key=str.casefold)
