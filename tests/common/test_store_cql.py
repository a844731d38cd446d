"""The CQL adapter on a real Apache Cassandra node: the conformance suite unchanged, plus what is CQL's own
(sealed paging states, the migration lock, a schema newer than the code, an unreachable cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.common.config import CqlConfig
from services.common.ports import free_port
from services.common.store.cassandra_node import CassandraNode
from services.common.store.cql import CqlStore
from services.common.store.port import InvalidKeyError, SchemaTooNewError, StoreUnavailable
from tests.common.store_conformance import *  # noqa: F403
from tests.common.store_conformance import EVENTS, ITEMS_V2, SCHEMA, SCHEMA_V2
from tests.cql import cql_config, unique_prefix


@pytest.fixture
async def store(cassandra: CassandraNode) -> AsyncIterator[CqlStore]:
    """A fresh store: its own keyspace prefix, so the conformance suite sees empty tables at version 0."""
    s = CqlStore(cql_config(cassandra, unique_prefix()))
    yield s
    await s.close()


async def test_paging_state_is_sealed_to_its_query(store: CqlStore) -> None:
    await store.migrate(SCHEMA)
    for i in range(5):
        await store.insert(EVENTS, {"owner": "a", "at": i, "seq": 0, "body": str(i)})
        await store.insert(EVENTS, {"owner": "b", "at": i, "seq": 0, "body": str(i)})
    page = await store.query(EVENTS, {"owner": "a"}, limit=2)
    assert page.next is not None
    with pytest.raises(InvalidKeyError, match="paging state"):
        await store.query(EVENTS, {"owner": "b"}, limit=2, after=page.next)  # another partition
    with pytest.raises(InvalidKeyError, match="paging state"):
        await store.query(EVENTS, {"owner": "a"}, limit=2, after=page.next, reverse=True)  # another order
    tampered = page.next[:-1] + bytes([page.next[-1] ^ 1])
    with pytest.raises(InvalidKeyError, match="paging state"):
        await store.query(EVENTS, {"owner": "a"}, limit=2, after=tampered)
    other = CqlStore(store._config, paging_secret=b"another deployment")
    await other.migrate(SCHEMA)
    with pytest.raises(InvalidKeyError, match="paging state"):
        await other.query(EVENTS, {"owner": "a"}, limit=2, after=page.next)
    await other.close()


async def test_replicas_migrating_together_apply_each_version_once(cassandra: CassandraNode) -> None:
    config = cql_config(cassandra, unique_prefix())
    stores = [CqlStore(config) for _ in range(3)]
    try:
        assert await asyncio.gather(*(s.migrate(SCHEMA_V2) for s in stores)) == [2, 2, 2]
        row = {"owner": "m", "item": "a", "n": 1, "state": "s", "note": "v2"}
        await stores[0].insert(ITEMS_V2, row)
        assert await stores[1].get(ITEMS_V2, {"owner": "m", "item": "a"}) == row
    finally:
        for s in stores:
            await s.close()


async def test_a_schema_newer_than_the_code_refuses_to_start(store: CqlStore) -> None:
    assert await store.migrate(SCHEMA_V2) == 2
    with pytest.raises(SchemaTooNewError, match="newer than this code"):
        await store.migrate(SCHEMA)


async def test_an_unreachable_cluster_is_one_clear_error() -> None:
    port = free_port("127.0.0.1")
    s = CqlStore(CqlConfig(contact_points=[f"127.0.0.1:{port}"], connect_timeout=1))
    with pytest.raises(StoreUnavailable, match=f"cannot reach the CQL cluster at 127.0.0.1:{port}"):
        await s.migrate(SCHEMA)
    await s.close()
