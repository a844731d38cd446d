"""The demo catalog: MovieLens-100k read from the recbole wheel, turned into titles, stored, made playable."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from marquee.v1 import common_pb2, encoding_pb2
from services.catalog.availability import Availability, run_consumer
from services.catalog.demo import demo_titles, slug
from services.catalog.importer import import_demo_catalog
from services.catalog.schema import IMPORTS, MEDIA, SCHEMA, TITLES, TITLES_BY_MEDIA
from services.common.bus.memory import InMemoryBus
from services.common.movielens import MovieLens, split_title
from services.common.store.port import Row, Store
from services.common.tasks import cancel_all
from services.common.topics import ENCODING_DONE
from tests.cql import open_test_store

MEDIA_IDS = ("big-buck-bunny", "bikes", "test-pattern", "counter-pattern")


@pytest.fixture
async def store(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    s = await open_test_store(store_kind, tmp_path, request, "catalog")
    await s.migrate(SCHEMA)
    yield s
    await s.close()


def test_the_whole_data_set_is_read(movielens: MovieLens) -> None:
    assert len(movielens.movies) == 1682
    assert len(movielens.users) == 943
    assert len(movielens.ratings) == 100_000
    assert {m.item_id for m in movielens.movies} == set(range(1, 1683))
    assert all(1 <= r.rating <= 5 for r in movielens.ratings)
    by_id = {m.item_id: m for m in movielens.movies}
    assert (by_id[1].title, by_id[1].year, by_id[1].genres) == (
        "Toy Story",
        1995,
        ("Animation", "Children's", "Comedy"),
    )
    assert by_id[127].title == "The Godfather" and by_id[127].year == 1972
    assert by_id[1412].year == 1995  # MovieLens has "V" as its year and "(1995)" in the title
    assert by_id[267].title == "Unknown" and by_id[267].year is None and by_id[267].genres == ()
    assert sum(1 for m in movielens.movies if m.year is None) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Usual Suspects, The", ("The Usual Suspects", "", None)),
        ("Seven (Se7en)", ("Seven", "Se7en", None)),
        ("Nikita (La Femme Nikita)", ("Nikita", "La Femme Nikita", None)),
        ("Blue Angel, The (Blaue Engel, Der)", ("The Blue Angel", "Der Blaue Engel", None)),
        ("Star Maker, The (Uomo delle stelle, L')", ("The Star Maker", "L'Uomo delle stelle", None)),
        ("Jungle Book, A", ("A Jungle Book", "", None)),
        ("Maybe, Maybe Not (Bewegte Mann, Der)", ("Maybe, Maybe Not", "Der Bewegte Mann", None)),
        (
            "Land Before Time III: The Time of the Great Giving (1995)",
            ("Land Before Time III: The Time of the Great Giving", "", 1995),
        ),
        ("Spider-Man", ("Spider-Man", "", None)),
    ],
)
def test_library_titles_become_display_titles(raw: str, expected: tuple[str, str, int | None]) -> None:
    assert split_title(raw) == expected


def test_demo_titles_are_deterministic_unique_and_plausible(movielens: MovieLens) -> None:
    first = demo_titles(movielens, MEDIA_IDS, now_us=1)
    again = demo_titles(movielens, MEDIA_IDS, now_us=1)
    assert first == again
    assert len(first) == 1682
    ids = [t["title_id"] for t in first]
    assert len(set(ids)) == 1682
    assert all(TITLES.column(c) for t in first for c in t)  # every key is a column of the table
    by_id = {t["title_id"]: t for t in first}
    godfather = by_id["the-godfather-1972"]
    assert godfather["display_name"] == "The Godfather" and godfather["release_year"] == 1972
    assert godfather["genres"] == ["Action", "Crime", "Drama"]
    assert by_id["star-wars-1977"]["popularity"] == 583.0  # real: Star Wars' number of MovieLens ratings
    assert Counter(t["media_id"] for t in first) == Counter(dict(zip(MEDIA_IDS, (420, 421, 421, 420), strict=True)))
    for t in first:
        assert common_pb2.MaturityRating.Value(t["maturity_rating"])  # a real enum value, never UNSPECIFIED
        assert t["description"] and len(t["cast"]) == 4 and len(t["directors"]) == 1
        assert 80 * 60 <= t["runtime_seconds"] <= 150 * 60
        assert t["playable"] is False
        if "Horror" in t["genres"]:
            assert t["maturity_rating"] in ("MATURITY_RATING_ADULT", "MATURITY_RATING_TEEN_16")
    kids = [t for t in first if t["genres"] and set(t["genres"]) <= {"Animation", "Children's"}]
    assert kids and all(t["maturity_rating"] in ("MATURITY_RATING_ALL", "MATURITY_RATING_KIDS_7") for t in kids)
    licensed = [t for t in first if t["licensed_regions"]]
    assert 0.1 < len(licensed) / len(first) < 0.3


def test_slugs_are_valid_resource_ids() -> None:
    assert slug("Amélie (Le Fabuleux Destin) 2001") == "amelie-le-fabuleux-destin-2001"
    assert slug("!!!") == "title"
    assert len(slug("x" * 200)) == 50


async def _titles_of(store: Store, media_id: str) -> list[Row]:
    links = await store.query(TITLES_BY_MEDIA, {"media_id": media_id}, limit=5000)
    rows = [await store.get(TITLES, {"title_id": link["title_id"]}) for link in links.rows]
    return [r for r in rows if r is not None]


def _done(media_id: str) -> bytes:
    return encoding_pb2.EncodingDoneEvent(
        job="encodingJobs/j1", title=f"titles/{media_id}", media_path=f"{media_id}/media.json", heights=[720, 480]
    ).SerializeToString()


async def test_import_is_once_and_links_every_title(store: Store, movielens: MovieLens) -> None:
    assert await import_demo_catalog(store, MEDIA_IDS, movielens) == 1682
    assert await import_demo_catalog(store, MEDIA_IDS, movielens) == 0
    assert (await store.get(IMPORTS, {"source": "movielens-100k"}) or {})["titles"] == 1682
    per_media = [await _titles_of(store, m) for m in MEDIA_IDS]
    assert sum(len(t) for t in per_media) == 1682
    assert all(t["media_id"] == m for m, titles in zip(MEDIA_IDS, per_media, strict=True) for t in titles)
    assert not any(t["playable"] for titles in per_media for t in titles)


async def test_encoding_done_makes_the_titles_of_that_asset_playable(store: Store, movielens: MovieLens) -> None:
    bus = InMemoryBus()
    availability = Availability(store)
    # an asset finished before the catalog was imported: the import picks it up
    assert await availability.media_ready(encoding_pb2.EncodingDoneEvent.FromString(_done("bikes"))) == 0
    await import_demo_catalog(store, MEDIA_IDS, movielens)
    assert all(t["playable"] for t in await _titles_of(store, "bikes"))
    consumer = asyncio.create_task(run_consumer(availability, bus))
    try:
        await bus.publish(ENCODING_DONE, b"\x08not a protobuf", key="x")  # dropped, the consumer carries on
        await bus.publish(ENCODING_DONE, encoding_pb2.EncodingDoneEvent(title="nonsense").SerializeToString())
        await bus.publish(ENCODING_DONE, _done("big-buck-bunny"), key="big-buck-bunny")
        await bus.publish(ENCODING_DONE, _done("big-buck-bunny"), key="big-buck-bunny")  # redelivery: harmless
        for _ in range(200):
            media = await store.get(MEDIA, {"media_id": "big-buck-bunny"})
            titles = await _titles_of(store, "big-buck-bunny")
            if media is not None and all(t["playable"] for t in titles):
                break
            await asyncio.sleep(0.05)
        assert media is not None and media["ready"] and media["heights"] == [720, 480]
        assert len(titles) == 420 and all(t["playable"] for t in titles)
        assert not any(t["playable"] for t in await _titles_of(store, "test-pattern"))
        assert await store.get(MEDIA, {"media_id": "nonsense"}) is None
    finally:
        await cancel_all([consumer])
        await bus.close()
