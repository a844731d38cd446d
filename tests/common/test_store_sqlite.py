"""The SQLite adapter: the conformance suite, plus durability, WAL and query plans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.common.store.sqlite import SqliteStore
from tests.common.store_conformance import *  # noqa: F403
from tests.common.store_conformance import EVENTS, ITEMS, SCHEMA


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "test.db")
    yield s
    await s.close()


async def test_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    s = SqliteStore(path)
    await s.migrate(SCHEMA)
    await s.insert(ITEMS, {"owner": "o", "item": "a", "n": 1, "state": "s"})
    await s.close()
    s2 = SqliteStore(path)
    await s2.migrate(SCHEMA)
    assert await s2.get(ITEMS, {"owner": "o", "item": "a"}) == {"owner": "o", "item": "a", "n": 1, "state": "s"}
    await s2.close()


async def test_wal_and_full_sync(store: SqliteStore) -> None:
    await store.migrate(SCHEMA)
    assert await store.pragma("journal_mode") == "wal"
    assert await store.pragma("synchronous") == 2  # FULL


async def test_partition_reads_use_the_primary_key(store: SqliteStore) -> None:
    await store.migrate(SCHEMA)
    plan = await store.explain(
        f'SELECT * FROM "{EVENTS.qualified_name}" WHERE "owner" = ? AND "at" < ? ORDER BY "at" DESC, "seq" ASC LIMIT 5',
        ("o", 3),
    )
    assert any("USING PRIMARY KEY" in p for p in plan), plan
    assert not any(p.startswith("SCAN") for p in plan), plan


async def test_closed_store_refuses(store: SqliteStore) -> None:
    from services.common.store.port import StoreUnavailable

    await store.migrate(SCHEMA)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get(ITEMS, {"owner": "o", "item": "a"})
