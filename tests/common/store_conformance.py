"""The store conformance suite: every Store adapter must pass it unchanged.

An adapter's test module does ``from tests.common.store_conformance import *`` and defines an async fixture
``store`` yielding a fresh, empty store of its kind.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from services.common.store.port import MAX_BATCH_ROWS, InvalidKeyError, Store
from services.common.store.schema import Column, Migration, Order, Schema, SchemaError, Table

KS = "conformance"

EVERY_TYPE = Table(
    "every_type",
    columns=(
        Column("id", "text"),
        Column("t", "text"),
        Column("i", "int"),
        Column("f", "float"),
        Column("b", "bool"),
        Column("raw", "blob"),
        Column("doc", "json"),
    ),
    partition_key=("id",),
    keyspace=KS,
)
EVENTS = Table(
    "events",
    columns=(Column("owner", "text"), Column("at", "int"), Column("seq", "int"), Column("body", "text")),
    partition_key=("owner",),
    clustering_key=(("at", Order.DESC), ("seq", Order.ASC)),
    keyspace=KS,
)
ITEMS = Table(
    "items",
    columns=(Column("owner", "text"), Column("item", "text"), Column("n", "int"), Column("state", "text")),
    partition_key=("owner",),
    clustering_key=(("item", Order.ASC),),
    keyspace=KS,
)
SCHEMA = Schema(KS, [Migration(1, create_tables=[EVERY_TYPE, EVENTS, ITEMS])])
ITEMS_V2 = Table(
    ITEMS.name, (*ITEMS.columns, Column("note", "text")), ITEMS.partition_key, ITEMS.clustering_key, keyspace=KS
)
SCHEMA_V2 = Schema(
    KS,
    [
        Migration(1, create_tables=[EVERY_TYPE, EVENTS, ITEMS]),
        Migration(2, add_columns=[("items", Column("note", "text"))]),
    ],
)


@pytest.fixture
async def db(store: Store) -> Store:
    assert await store.migrate(SCHEMA) == 1
    return store


async def test_round_trip_every_type(db: Store) -> None:
    row = {
        "id": "a",
        "t": "héllo ✓",
        "i": -(2**63),
        "f": 1.5,
        "b": True,
        "raw": b"\x00\xff",
        "doc": {"k": [1, "x", None]},
    }
    assert await db.insert(EVERY_TYPE, row)
    assert await db.get(EVERY_TYPE, {"id": "a"}) == row
    assert await db.get(EVERY_TYPE, {"id": "missing"}) is None
    await db.insert(EVERY_TYPE, {"id": "b", "t": None, "i": 2**63 - 1, "f": 0.0, "b": False, "raw": b"", "doc": []})
    got = await db.get(EVERY_TYPE, {"id": "b"})
    assert got is not None and got["t"] is None and got["b"] is False and got["i"] == 2**63 - 1 and got["doc"] == []


async def test_clustering_order_and_reverse(db: Store) -> None:
    for at in [5, 1, 3]:
        for seq in [2, 1]:
            await db.insert(EVENTS, {"owner": "o", "at": at, "seq": seq, "body": f"{at}-{seq}"})
    await db.insert(EVENTS, {"owner": "other", "at": 9, "seq": 9, "body": "x"})
    page = await db.query(EVENTS, {"owner": "o"}, limit=100)
    assert [r["body"] for r in page.rows] == ["5-1", "5-2", "3-1", "3-2", "1-1", "1-2"]  # at DESC, seq ASC
    assert page.next is None
    page = await db.query(EVENTS, {"owner": "o"}, limit=100, reverse=True)
    assert [r["body"] for r in page.rows] == ["1-2", "1-1", "3-2", "3-1", "5-2", "5-1"]


@pytest.mark.parametrize("reverse", [False, True])
async def test_paging_has_no_gaps_or_duplicates(db: Store, reverse: bool) -> None:
    expected = []
    for i in range(250):
        await db.insert(EVENTS, {"owner": "p", "at": i // 3, "seq": i % 3, "body": str(i)})
        expected.append(str(i))
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await db.query(EVENTS, {"owner": "p"}, limit=7, after=after, reverse=reverse)
        pages += 1
        assert len(page.rows) <= 7
        seen += [r["body"] for r in page.rows]
        if page.next is None:
            break
        after = page.next
    assert pages == 36
    assert len(seen) == len(set(seen)) == 250
    assert sorted(seen, key=int) == expected


async def test_range_filter_on_first_clustering_column(db: Store) -> None:
    for i in range(10):
        await db.insert(ITEMS, {"owner": "r", "item": f"i{i}", "n": i, "state": "s"})
    page = await db.query(ITEMS, {"owner": "r"}, limit=100, min_value="i3", max_value="i6")
    assert [r["item"] for r in page.rows] == ["i3", "i4", "i5", "i6"]


async def test_insert_many_writes_every_row_and_validates_first(db: Store) -> None:
    rows = [{"owner": f"o{i % 7}", "item": f"i{i:04d}", "n": i, "state": "new"} for i in range(1200)]
    await db.insert_many(ITEMS, rows)
    page = await db.query(ITEMS, {"owner": "o3"}, limit=MAX_BATCH_ROWS)
    assert [r["n"] for r in page.rows] == [i for i in range(1200) if i % 7 == 3]
    await db.insert_many(ITEMS, [{**rows[0], "state": "replaced"}])  # an upsert, like insert
    assert (await db.get(ITEMS, {"owner": "o0", "item": "i0000"}) or {})["state"] == "replaced"
    bad: list[dict[str, object]] = [{"owner": "z", "item": "ok", "n": 1}, {"owner": "z", "item": "bad", "n": "x"}]
    with pytest.raises(InvalidKeyError):
        await db.insert_many(ITEMS, bad)
    assert await db.get(ITEMS, {"owner": "z", "item": "ok"}) is None  # nothing written
    with pytest.raises(InvalidKeyError, match="at most"):
        await db.insert_many(ITEMS, [{"owner": "z", "item": str(i)} for i in range(MAX_BATCH_ROWS + 1)])
    await db.insert_many(ITEMS, [])


async def test_update_many_sets_columns_of_every_row_and_validates_first(db: Store) -> None:
    await db.insert_many(ITEMS, [{"owner": "u", "item": f"i{i}", "n": i, "state": "new"} for i in range(300)])
    keys = [{"owner": "u", "item": f"i{i}"} for i in range(0, 300, 2)] + [{"owner": "u2", "item": "fresh"}]
    await db.update_many(ITEMS, keys, {"state": "done"})
    page = await db.query(ITEMS, {"owner": "u"}, limit=MAX_BATCH_ROWS)
    assert {r["item"]: r["state"] for r in page.rows} == {f"i{i}": "done" if i % 2 == 0 else "new" for i in range(300)}
    assert all(r["n"] == int(r["item"][1:]) for r in page.rows)  # other columns kept
    assert await db.get(ITEMS, {"owner": "u2", "item": "fresh"}) == {
        "owner": "u2",
        "item": "fresh",
        "n": None,
        "state": "done",
    }  # an upsert, like update
    with pytest.raises(InvalidKeyError):
        await db.update_many(ITEMS, [{"owner": "u", "item": "i1"}, {"owner": "u"}], {"state": "bad"})
    with pytest.raises(InvalidKeyError):
        await db.update_many(ITEMS, [{"owner": "u", "item": "i1"}], {"item": "key"})
    assert (await db.get(ITEMS, {"owner": "u", "item": "i1"}) or {})["state"] == "new"  # nothing written
    with pytest.raises(InvalidKeyError, match="at most"):
        await db.update_many(ITEMS, [{"owner": "z", "item": str(i)} for i in range(MAX_BATCH_ROWS + 1)], {"n": 1})
    await db.update_many(ITEMS, [], {"n": 1})


async def test_insert_if_not_exists_has_exactly_one_winner(db: Store) -> None:
    results = await asyncio.gather(
        *(db.insert(ITEMS, {"owner": "lwt", "item": "x", "n": i, "state": "s"}, if_not_exists=True) for i in range(50))
    )
    assert sum(results) == 1
    row = await db.get(ITEMS, {"owner": "lwt", "item": "x"})
    assert row is not None and row["n"] == results.index(True)


async def test_compare_and_set_updates(db: Store) -> None:
    await db.insert(ITEMS, {"owner": "cas", "item": "c", "n": 0, "state": "s"})

    async def bump() -> int:
        wins = 0
        for _ in range(100):
            row = await db.get(ITEMS, {"owner": "cas", "item": "c"})
            assert row is not None
            if await db.update(ITEMS, {"owner": "cas", "item": "c"}, {"n": row["n"] + 1}, if_={"n": row["n"]}):
                wins += 1
                if wins == 10:
                    return wins
            await asyncio.sleep(random.random() / 1000)
        return wins

    wins = await asyncio.gather(*(bump() for _ in range(8)))
    row = await db.get(ITEMS, {"owner": "cas", "item": "c"})
    assert row is not None and row["n"] == sum(wins) == 80
    assert not await db.update(ITEMS, {"owner": "cas", "item": "c"}, {"state": "t"}, if_={"n": 0})
    assert not await db.update(ITEMS, {"owner": "cas", "item": "nope"}, {"state": "t"}, if_exists=True)
    assert await db.get(ITEMS, {"owner": "cas", "item": "nope"}) is None
    assert await db.update(ITEMS, {"owner": "cas", "item": "upsert"}, {"state": "t"})
    assert (await db.get(ITEMS, {"owner": "cas", "item": "upsert"})) == {
        "owner": "cas",
        "item": "upsert",
        "n": None,
        "state": "t",
    }


async def test_counters_are_exact_under_concurrency(db: Store) -> None:
    values = await asyncio.gather(*(db.increment(ITEMS, {"owner": "cnt", "item": "views"}, "n", 1) for _ in range(100)))
    assert sorted(values) == list(range(1, 101))
    assert await db.increment(ITEMS, {"owner": "cnt", "item": "views"}, "n", -5) == 95


async def test_ttl_rows_expire(db: Store) -> None:
    await db.insert(ITEMS, {"owner": "ttl", "item": "short", "n": 1, "state": "s"}, ttl=1)
    await db.insert(ITEMS, {"owner": "ttl", "item": "long", "n": 2, "state": "s"})
    assert await db.get(ITEMS, {"owner": "ttl", "item": "short"}) is not None
    await asyncio.sleep(2.1)
    assert await db.get(ITEMS, {"owner": "ttl", "item": "short"}) is None
    page = await db.query(ITEMS, {"owner": "ttl"}, limit=10)
    assert [r["item"] for r in page.rows] == ["long"]
    # an expired row does not block insert-if-not-exists, nor satisfy a condition
    assert not await db.update(ITEMS, {"owner": "ttl", "item": "short"}, {"n": 5}, if_exists=True)
    assert await db.insert(ITEMS, {"owner": "ttl", "item": "short", "n": 3, "state": "s"}, if_not_exists=True)


async def test_update_keeps_ttl(db: Store) -> None:
    await db.insert(ITEMS, {"owner": "ttl2", "item": "a", "n": 1, "state": "s"}, ttl=1)
    assert await db.update(ITEMS, {"owner": "ttl2", "item": "a"}, {"state": "used"}, if_={"state": "s"})
    await asyncio.sleep(2.1)
    assert await db.get(ITEMS, {"owner": "ttl2", "item": "a"}) is None


async def test_deletes(db: Store) -> None:
    for i in range(5):
        await db.insert(ITEMS, {"owner": "d", "item": f"i{i}", "n": i, "state": "s"})
    assert await db.delete(ITEMS, {"owner": "d", "item": "i0"}, if_exists=True)
    assert not await db.delete(ITEMS, {"owner": "d", "item": "i0"}, if_exists=True)
    assert not await db.delete(ITEMS, {"owner": "d", "item": "i1"}, if_={"n": 99})
    assert await db.delete(ITEMS, {"owner": "d", "item": "i1"}, if_={"n": 1})
    await db.delete(ITEMS, {"owner": "d"})  # the whole partition
    assert (await db.query(ITEMS, {"owner": "d"}, limit=10)).rows == []


async def test_migrations_are_idempotent_and_extend(store: Store) -> None:
    assert await store.migrate(SCHEMA) == 1
    assert await store.migrate(SCHEMA) == 1
    await store.insert(ITEMS, {"owner": "m", "item": "a", "n": 1, "state": "s"})
    assert await store.migrate(SCHEMA_V2) == 2
    assert await store.migrate(SCHEMA_V2) == 2
    await store.insert(ITEMS_V2, {"owner": "m", "item": "b", "n": 2, "state": "s", "note": "new"})
    rows = (await store.query(ITEMS_V2, {"owner": "m"}, limit=10)).rows
    assert [(r["item"], r["note"]) for r in rows] == [("a", None), ("b", "new")]


async def test_bad_calls_are_typed_errors(db: Store) -> None:
    with pytest.raises(InvalidKeyError, match="missing clustering key"):
        await db.get(ITEMS, {"owner": "x"})
    with pytest.raises(InvalidKeyError, match="missing partition key"):
        await db.get(ITEMS, {"item": "x"})
    with pytest.raises(InvalidKeyError, match="is int, got str"):
        await db.insert(ITEMS, {"owner": "x", "item": "y", "n": "three", "state": "s"})
    with pytest.raises(InvalidKeyError, match="no column"):
        await db.insert(ITEMS, {"owner": "x", "item": "y", "bogus": 1})
    with pytest.raises(InvalidKeyError, match="primary key"):
        await db.update(ITEMS, {"owner": "x", "item": "y"}, {"item": "z"})
    with pytest.raises(InvalidKeyError, match="limit"):
        await db.query(ITEMS, {"owner": "x"}, limit=0)
    with pytest.raises(InvalidKeyError, match="paging state"):
        await db.query(ITEMS, {"owner": "x"}, limit=5, after=b"garbage")
    with pytest.raises(InvalidKeyError, match="ttl"):
        await db.insert(ITEMS, {"owner": "x", "item": "y", "n": 1, "state": "s"}, ttl=0)
    unknown = Table("unknown", (Column("k", "text"),), ("k",), keyspace=KS)
    with pytest.raises(SchemaError, match="not migrated"):
        await db.get(unknown, {"k": "a"})
