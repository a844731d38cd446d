"""Last write wins by the caller's write time (``insert(..., timestamp=)``), the same on both stores."""

from __future__ import annotations

from services.common.store.port import Store
from tests.common.store_conformance import ITEMS, SCHEMA


async def test_an_older_write_never_replaces_a_newer_one(any_store: Store) -> None:
    await any_store.migrate(SCHEMA)
    key = {"owner": "ts", "item": "x"}
    await any_store.insert(ITEMS, {**key, "n": 2, "state": "new"}, timestamp=2_000)
    await any_store.insert(ITEMS, {**key, "n": 1, "state": "old"}, timestamp=1_000)
    assert await any_store.get(ITEMS, key) == {**key, "n": 2, "state": "new"}
    await any_store.insert(ITEMS, {**key, "n": 3, "state": "newer"}, timestamp=3_000)
    assert await any_store.get(ITEMS, key) == {**key, "n": 3, "state": "newer"}
    page = await any_store.query(ITEMS, {"owner": "ts"}, limit=10)
    assert page.rows == [{**key, "n": 3, "state": "newer"}]
