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
from services.common.names import NamePattern
from services.common.store.port import MAX_QUERY_LIMIT, Store
from services.common.topics import ENCODING_DONE

log = logging.getLogger("marquee.catalog")

TITLE = NamePattern("titles/{title}")
CONSUMER_GROUP = "catalog"


class Availability:
    """``on_change`` (optional) is told of every title that became playable (the search index follows)."""

    def __init__(self, store: Store, on_change: Callable[[str], Awaitable[None]] | None = None) -> None:
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
        """Mark the titles of ``media_id`` playable if the asset is ready; returns how many changed."""
        media = await self._store.get(MEDIA, {"media_id": media_id})
        if media is None or not media["ready"]:
            return 0
        changed = 0
        after = None
        while True:
            page = await self._store.query(TITLES_BY_MEDIA, {"media_id": media_id}, limit=MAX_QUERY_LIMIT, after=after)
            for link in page.rows:
                key = {"title_id": link["title_id"]}
                if await self._store.update(TITLES, key, {"playable": True}, if_={"playable": False}):
                    changed += 1
                    if self._on_change is not None:
                        await self._on_change(link["title_id"])
            if page.next is None:
                return changed
            after = page.next

    async def consume(self, bus: EventBus, consumer: str = "catalog-1") -> None:
        """Follow ``encoding.done`` until cancelled (from the start of the retained log: handling is idempotent)."""
        await follow_topic(
            bus, ENCODING_DONE, CONSUMER_GROUP, consumer, encoding_pb2.EncodingDoneEvent, self._handle,
            from_beginning=True,
        )  # fmt: skip

    async def _handle(self, event: encoding_pb2.EncodingDoneEvent) -> None:
        changed = await self.media_ready(event)
        log.info("media %s is ready: %d titles became playable", event.title, changed)


async def run_consumer(availability: Availability, bus: EventBus) -> None:
    """The consumer loop, restarted after unexpected failures (the message is redelivered)."""
    while True:
        try:
            await availability.consume(bus)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the %s consumer failed; restarting in 1 s", ENCODING_DONE)
            await asyncio.sleep(1.0)
