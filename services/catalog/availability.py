"""Playability: a title becomes playable when the asset it plays has been encoded.

The encoder publishes ``encoding.done`` (marquee.v1.EncodingDoneEvent) when a title's renditions and media
description are in the origin store. The catalog records the asset as ready in ``media`` and marks every title
that plays it (``titles_by_media``) playable. Handling is idempotent, so at-least-once delivery is harmless;
a malformed event is logged and dropped rather than redelivered for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from marquee.v1 import encoding_pb2
from services.catalog.schema import MEDIA, TITLES, TITLES_BY_MEDIA
from services.common.bus.consume import follow_topic
from services.common.bus.port import EventBus
from services.common.ids import new_id
from services.common.logs import CONSOLE
from services.common.names import NamePattern
from services.common.store.port import MAX_QUERY_LIMIT, Store
from services.common.topics import ENCODING_DONE

log = logging.getLogger("marquee.catalog")
console = logging.getLogger(f"{CONSOLE}.catalog")

TITLE = NamePattern("titles/{title}")
CONSUMER_GROUP = "catalog"


class Availability:
    """``on_change`` (optional) is told of the titles that became playable, a batch at a time (the view and its
    search index follow in one update per batch)."""

    def __init__(self, store: Store, on_change: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
        self._store = store
        self._on_change = on_change

    async def media_ready(self, event: encoding_pb2.EncodingDoneEvent) -> int:
        """Record the asset named by ``event.title`` as ready; returns how many titles became playable."""
        media_id = TITLE.parse(event.title, "title")["title"]
        await self._store.insert(
            MEDIA,
            {
                "media_id": media_id,
                "ready": True,
                "media_path": event.media_path,
                "heights": list(event.heights),
                "duration_seconds": event.duration_seconds,
                "job": event.job,
                "ready_time": int(time.time() * 1_000_000),
            },
        )
        return await self.refresh(media_id)

    async def refresh(self, media_id: str) -> int:
        """Mark the titles of ``media_id`` playable if the asset is ready; returns how many changed.

        A page of the asset's titles at a time: their rows are read concurrently, the ones not yet playable are
        marked in one batch write, and ``on_change`` hears of the page's titles together (all of them: another
        replica may have marked them first, and this replica's view must follow too). Titles deleted meanwhile
        are skipped (their rows are gone), so no row is brought back."""
        media = await self._store.get(MEDIA, {"media_id": media_id})
        if media is None or not media["ready"]:
            return 0
        changed = 0
        after = None
        while True:
            page = await self._store.query(TITLES_BY_MEDIA, {"media_id": media_id}, limit=MAX_QUERY_LIMIT, after=after)
            ids = [link["title_id"] for link in page.rows]
            rows = await asyncio.gather(*(self._store.get(TITLES, {"title_id": i}) for i in ids))
            live = [(i, row) for i, row in zip(ids, rows, strict=True) if row is not None]
            pending = [i for i, row in live if not row["playable"]]
            if pending:
                await self._store.update_many(TITLES, [{"title_id": i} for i in pending], {"playable": True})
                changed += len(pending)
            if live and self._on_change is not None:
                await self._on_change([i for i, _ in live])
            if page.next is None:
                return changed
            after = page.next

    async def consume(self, bus: EventBus, group: str) -> None:
        """Follow ``encoding.done`` until cancelled (from the start of the retained log: handling is idempotent).
        Every replica follows it in a group of its own, so every replica's view follows."""
        await follow_topic(
            bus,
            ENCODING_DONE,
            group,
            "catalog",
            encoding_pb2.EncodingDoneEvent,
            self._handle,
            from_beginning=True,
            per_process=True,
        )

    async def _handle(self, event: encoding_pb2.EncodingDoneEvent) -> None:
        changed = await self.media_ready(event)
        log.info("media %s is ready: %d titles became playable", event.title, changed)
        if changed:
            console.info("  %s: %d catalog titles are playable now", event.title.removeprefix("titles/"), changed)


async def run_consumer(availability: Availability, bus: EventBus) -> None:
    """The consumer loop, restarted after unexpected failures (the message is redelivered)."""
    group = f"{CONSUMER_GROUP}-{new_id()}"
    while True:
        try:
            await availability.consume(bus, group)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the %s consumer failed; restarting in 1 s", ENCODING_DONE)
            await asyncio.sleep(1.0)
