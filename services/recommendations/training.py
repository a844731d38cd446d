"""The batch job around :mod:`ml.train`: read the catalog's titles (from CatalogService) and the logged signals
(from the service's store), fit (in a worker thread), write every profile's precomputed list and the serving
artifact. ``marquee train`` runs it once; the service runs it at start and every ``training.interval`` seconds.

The catalog's titles are listed through CatalogService (:mod:`services.recommendations.titles`); the demo
audience maps MovieLens items to the demo titles through the ``source`` the demo import recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

from ml.data import Dataset, Event, Item, movielens_dataset
from ml.models import Cancelled
from ml.train import Result, fit
from services.common import movielens
from services.common.ids import now_micros
from services.common.store.port import MAX_QUERY_LIMIT, PagingState, Row, Store
from services.common.store.schema import Table
from services.recommendations.config import TrainingConfig
from services.recommendations.schema import ARTIFACTS, BUCKETS, CURRENT, INTERACTIONS, LISTS, MODELS, PROFILES, SCHEMA
from services.recommendations.titles import CatalogTitles, demo_item, item_of

log = logging.getLogger("marquee.recommendations")


async def _all(store: Store, table: Table, partition: dict[str, object]) -> list[Row]:
    rows: list[Row] = []
    after: PagingState | None = None
    while True:
        page = await store.query(table, partition, limit=MAX_QUERY_LIMIT, after=after)
        rows += page.rows
        if page.next is None:
            return rows
        after = page.next


async def catalog_items(titles: CatalogTitles) -> tuple[tuple[Item, ...], dict[int, str]]:
    """Every catalog title as an item (sorted by id), and the demo titles' MovieLens item ids."""
    listed = await titles.all()
    items = tuple(item_of(t) for t in listed)
    demo = {movie: item.id for item, t in zip(items, listed, strict=True) if (movie := demo_item(t)) is not None}
    return items, demo


async def profile_events(store: Store) -> list[Event]:
    events: list[Event] = []
    for bucket in range(BUCKETS):
        for p in await _all(store, PROFILES, {"bucket": bucket}):
            for r in await _all(store, INTERACTIONS, {"profile_id": p["profile_id"]}):
                events.append(
                    Event(p["profile_id"], r["title_id"], r["event_time"] // 1_000_000, r["positive"], r["region"])
                )
    return events


def profile_features(events: list[Event]) -> dict[str, tuple[str, ...]]:
    """What the batch job knows of a profile beyond its history: the region it last watched in."""
    latest: dict[str, tuple[int, str]] = {}
    for e in events:
        if e.region and e.time >= latest.get(e.user, (-1, ""))[0]:
            latest[e.user] = (e.time, e.region)
    return {user: (f"region:{region}",) for user, (_, region) in latest.items()}


async def load_dataset(store: Store, titles: CatalogTitles, demo_audience: bool) -> tuple[Dataset, list[str]]:
    """The training data and the profiles to precompute for."""
    items, demo_ids = await catalog_items(titles)
    events = await profile_events(store)
    profiles = sorted({e.user for e in events})
    data = Dataset(items, tuple(events), profile_features(events))
    if demo_audience and demo_ids:
        audience = movielens_dataset(await asyncio.to_thread(movielens.load), demo_ids)
        # replayed as if its last rating were an hour ago, so that trending reflects the audience
        shift = now_micros() // 1_000_000 - 3600 - max(e.time for e in audience.events)
        data = data.merged(audience.with_events(dataclasses.replace(e, time=e.time + shift) for e in audience.events))
    return data, profiles


@dataclass(frozen=True)
class Outcome:
    version: str
    summary: dict[str, object]
    seconds: float


async def write(store: Store, result: Result) -> None:
    version = result.artifact.version
    for profile_id, picks in result.lists.items():
        rows = [
            {
                "profile_id": profile_id,
                "rank": rank,
                "title_id": p.title_id,
                "score": p.score,
                "reason": p.reason,
                "source_title": p.source_title,
                "version": version,
            }
            for rank, p in enumerate(picks)
        ]
        await store.insert_many(LISTS, rows)
        tail = await store.query(LISTS, {"profile_id": profile_id}, limit=MAX_QUERY_LIMIT, min_value=len(picks))
        for r in tail.rows:  # a shorter list than last time: drop the old tail
            await store.delete(LISTS, {"profile_id": profile_id, "rank": r["rank"]})
    await store.insert(ARTIFACTS, {"version": version, "artifact": result.artifact.to_bytes()})
    previous = await store.get(MODELS, {"name": CURRENT})
    await store.insert(
        MODELS, {"name": CURRENT, "version": version, "trained_time": now_micros(), "summary": result.summary}
    )
    if previous is not None and previous["version"] != version:
        await store.delete(ARTIFACTS, {"version": previous["version"]})


async def train(store: Store, titles: CatalogTitles, config: TrainingConfig) -> Outcome | None:
    """One training run on the catalog's titles (from ``titles``) and the signals in ``store``; None when there is
    nothing to train on (no titles, or no interactions at all). Cancelling the calling task stops the worker
    thread at its next step."""
    await store.migrate(SCHEMA)
    started = time.perf_counter()
    data, profiles = await load_dataset(store, titles, config.demo_audience)
    if not data.items or not data.events:
        log.info("recommendations: nothing to train on yet (%d titles, %d events)", len(data.items), len(data.events))
        return None
    stop = threading.Event()
    work = asyncio.ensure_future(
        asyncio.to_thread(
            fit, data, profiles, seed=config.seed, list_size=config.list_size, epochs=config.lightfm_epochs, stop=stop
        )
    )
    try:
        result = await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(Cancelled):
            await work
        raise
    await write(store, result)
    seconds = time.perf_counter() - started
    log.info("recommendations: trained %s in %.1f s: %s", result.artifact.version, seconds, result.summary)
    return Outcome(result.artifact.version, result.summary, seconds)
