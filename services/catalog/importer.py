"""Loads the demo catalog (MovieLens-100k titles) into the store once, and links each title to its asset."""

from __future__ import annotations

import asyncio
import logging
import time

from services.catalog.availability import Availability
from services.catalog.demo import demo_titles
from services.catalog.schema import IMPORTS, TITLES, TITLES_BY_BUCKET, TITLES_BY_MEDIA, bucket_of
from services.common import movielens
from services.common.store.port import MAX_BATCH_ROWS, Row, Store

log = logging.getLogger("marquee.catalog")


async def import_demo_catalog(store: Store, media: tuple[str, ...], data: movielens.MovieLens | None = None) -> int:
    """Write the demo titles unless already imported; returns how many titles were written (0: already there).

    The ``imports`` row is written last, so an import cut short is simply redone (every write is an upsert)."""
    if await store.get(IMPORTS, {"source": movielens.SOURCE}) is not None:
        return 0
    if data is None:
        data = await asyncio.to_thread(movielens.load)
    now = int(time.time() * 1_000_000)
    titles = demo_titles(data, media, now)
    links: list[Row] = [{"media_id": t["media_id"], "title_id": t["title_id"]} for t in titles]
    listing: list[Row] = [{"bucket": bucket_of(t["title_id"]), "title_id": t["title_id"]} for t in titles]
    for start in range(0, len(titles), MAX_BATCH_ROWS):
        await store.insert_many(TITLES, titles[start : start + MAX_BATCH_ROWS])
        await store.insert_many(TITLES_BY_MEDIA, links[start : start + MAX_BATCH_ROWS])
        await store.insert_many(TITLES_BY_BUCKET, listing[start : start + MAX_BATCH_ROWS])
    availability = Availability(store)
    playable = sum([await availability.refresh(m) for m in media])
    await store.insert(IMPORTS, {"source": movielens.SOURCE, "titles": len(titles), "import_time": now})
    log.info("imported %d %s titles (%d already playable)", len(titles), movielens.SOURCE, playable)
    return len(titles)
