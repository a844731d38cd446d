"""The training signals, logged from the bus into the recommendations keyspace.

- ``playback.update``: a title the profile is watching: seen from its first update; positive once finished or
  past a quarter of its runtime (an early abandon stays a non-positive "seen");
- ``playback.viewed``: the end of a session, same rule;
- ``catalog.rating``: 3 stars or more is positive, 1-2 is seen but negative; a removed rating leaves the title
  seen with no rating signal.

A row keeps the strongest signal: finished > viewed, and a rating overrides watching. Every row also bumps the
profile's listing row, so the batch job finds the profile.

Applying an event twice, or late, changes nothing: the merge keeps the strongest watching signal whatever the
order, and a rating older than the row's rating (a redelivery after a newer rating or its removal) is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from marquee.v1 import catalog_pb2, playback_pb2
from services.common.bus.consume import follow_topic
from services.common.bus.port import EventBus
from services.common.errors import InvalidArgument
from services.common.ids import now_micros
from services.common.names import NamePattern
from services.common.store.port import Store
from services.common.topics import CATALOG_RATING, PLAYBACK_UPDATE, PLAYBACK_VIEWED
from services.recommendations.schema import INTERACTIONS, PROFILES, bucket_of

log = logging.getLogger("marquee.recommendations")

PROFILE = NamePattern("accounts/{account}/profiles/{profile}")
TITLE = NamePattern("titles/{title}")
RATING = NamePattern("titles/{title}/ratings/{profile}")
POSITIVE_SHARE = 0.25
GROUP = "recommendations-signals"


def _micros(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000 if ts.seconds or ts.nanos else now_micros()


def _ms(d: duration_pb2.Duration) -> int:
    return d.seconds * 1000 + d.nanos // 1_000_000


class Signals:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(
        self, profile_id: str, title_id: str, *, positive: bool, kind: str, time: int, region: str
    ) -> None:
        key = {"profile_id": profile_id, "title_id": title_id}
        old = await self._store.get(INTERACTIONS, key)
        if old is not None:
            if kind == "rated" and old["kind"] == "rated" and time < old["event_time"]:
                return  # an older rating, redelivered after a newer one
            if old["kind"] == "rated" and kind != "rated":  # a rating says more than watching: the row is the rating
                positive, kind, time = old["positive"], "rated", old["event_time"]
            elif kind != "rated" and old["positive"]:
                positive, kind = True, old["kind"] if old["kind"] == "finished" else kind
            region = region or old["region"]
        row = {**key, "positive": positive, "kind": kind, "event_time": time, "region": region}
        await self._store.insert(INTERACTIONS, row)
        await self._store.insert(
            PROFILES, {"bucket": bucket_of(profile_id), "profile_id": profile_id, "update_time": time}
        )

    async def watched(
        self, profile: str, title: str, position_ms: int, runtime_ms: int, finished: bool, time: int, region: str
    ) -> None:
        profile_id = PROFILE.parse(profile, "profile")["profile"]
        title_id = TITLE.parse(title, "title")["title"]
        share = position_ms / runtime_ms if runtime_ms > 0 else 0.0
        positive = finished or share >= POSITIVE_SHARE
        await self.record(
            profile_id, title_id, positive=positive, kind="finished" if finished else "viewed", time=time, region=region
        )

    async def on_update(self, e: playback_pb2.PlaybackUpdateEvent) -> None:
        await self.watched(
            e.profile, e.title, _ms(e.position), _ms(e.runtime), e.finished, _micros(e.event_time), e.region
        )

    async def on_viewed(self, e: playback_pb2.VideoViewedEvent) -> None:
        await self.watched(
            e.profile, e.title, _ms(e.position), _ms(e.runtime), e.finished, _micros(e.view_time), e.region
        )

    async def on_rating(self, e: catalog_pb2.TitleRatedEvent) -> None:
        ids = RATING.parse(e.rating, "rating")
        if not 0 <= e.stars <= 5:
            raise InvalidArgument(f"stars must be 0..5 (got {e.stars})")
        await self.record(
            ids["profile"], ids["title"], positive=e.stars >= 3, kind="rated", time=_micros(e.event_time), region=""
        )


def follow(signals: Signals, bus: EventBus) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """The consumers of the signals, to run as background tasks (one group for every replica: each event is
    logged once)."""

    def consumer(topic: str, event_type: type, handle: Callable[..., Awaitable[None]]) -> Callable[[], Any]:
        return lambda: follow_topic(bus, topic, GROUP, "signals", event_type, handle)

    return [
        consumer(PLAYBACK_UPDATE, playback_pb2.PlaybackUpdateEvent, signals.on_update),
        consumer(PLAYBACK_VIEWED, playback_pb2.VideoViewedEvent, signals.on_viewed),
        consumer(CATALOG_RATING, catalog_pb2.TitleRatedEvent, signals.on_rating),
    ]
