"""The training signals are idempotent: an event applied twice, or redelivered late (after a newer one), leaves
the interaction row as the newest events made it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from marquee.v1 import catalog_pb2
from services.common.store.port import Row, Store
from services.common.store.sqlite import SqliteStore
from services.recommendations.schema import INTERACTIONS, SCHEMA
from services.recommendations.signals import Signals

PROFILE, TITLE = "prof-s", "heat-1995"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = SqliteStore(tmp_path / "recs.db")
    await s.migrate(SCHEMA)
    yield s
    await s.close()


def rated(stars: int, at: int) -> catalog_pb2.TitleRatedEvent:
    event = catalog_pb2.TitleRatedEvent(rating=f"titles/{TITLE}/ratings/{PROFILE}", stars=stars)
    event.event_time.FromMicroseconds(at)
    return event


async def row(store: Store) -> Row | None:
    return await store.get(INTERACTIONS, {"profile_id": PROFILE, "title_id": TITLE})


async def test_a_rating_redelivered_after_a_newer_one_changes_nothing(store: Store) -> None:
    signals = Signals(store)
    liked, removed = rated(5, 1_000), rated(0, 2_000)
    await signals.on_rating(liked)
    await signals.on_rating(removed)
    after = await row(store)
    assert after is not None and not after["positive"] and after["kind"] == "rated"
    await signals.on_rating(liked)  # redelivered (its consumer died before acknowledging it)
    await signals.on_rating(removed)  # and the newer one twice
    assert await row(store) == after


async def test_watching_after_a_rating_keeps_the_rating_and_its_time(store: Store) -> None:
    signals = Signals(store)
    await signals.on_rating(rated(2, 1_000))  # disliked
    await signals.watched(f"accounts/a/profiles/{PROFILE}", f"titles/{TITLE}", 90, 100, True, 5_000, "GB")
    kept = await row(store)
    assert kept is not None and (kept["kind"], kept["positive"], kept["event_time"]) == ("rated", False, 1_000)
    await signals.on_rating(rated(4, 3_000))  # a newer rating than the first still counts
    changed = await row(store)
    assert changed is not None and changed["positive"] and changed["event_time"] == 3_000
