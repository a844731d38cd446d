"""The real CQL server of the test session: one Apache Cassandra node, started on first use and stopped at the end.

Suites parametrized over both stores ask for :func:`cql_store_factory`; each CQL store it makes gets the session's
keyspace prefix (tables are created once per session, not per test) and deletes every partition the test wrote
when the test ends, so every test starts on empty tables without paying for a schema change. A suite that starts
every test from the same data copies it once per session (:func:`copy_template`) and restores, when each test ends,
only what the test changed (:class:`RestoringStore`)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.common.config import CqlConfig
from services.common.store.cassandra_node import CassandraNode
from services.common.store.copy import Checkpoint, CopyTarget, _write, copy_schemas, tables_of
from services.common.store.cql import CqlStore
from services.common.store.port import MAX_BATCH_ROWS, Page, PagingState, Row, ScanPage, Store
from services.common.store.schema import Schema, Table
from services.common.store.sqlite import SqliteStore

STORES = ["sqlite", "cql"]
TRUNCATE_ABOVE = 500  # partitions written to one table by a test: past this, one TRUNCATE is quicker


@pytest.fixture(scope="session")
def cassandra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraNode]:
    """One Cassandra node for the whole session (about 20-40 s to start, 1 GB of memory). While iterating,
    ``MARQUEE_TEST_CQL=HOST:PORT`` points the suites at a node that is already running instead."""
    running = os.environ.get("MARQUEE_TEST_CQL")
    if running:
        host, _, port = running.rpartition(":")
        yield CassandraNode(tmp_path_factory.mktemp("cassandra"), host=host, native_port=int(port))
        return
    # no test of this node kills it: the commit log may sync every 10 s instead of before each answer
    node = CassandraNode(
        tmp_path_factory.mktemp("cassandra"), heap_mb=768, commitlog_sync="periodic", unsafe_system=True
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()


def cql_config(node: CassandraNode, prefix: str) -> CqlConfig:
    return CqlConfig(contact_points=[node.contact_point], keyspace_prefix=prefix, speculative_executions=0)


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}_"


class CleanedStore:
    """A Store that forwards to a CQL store and remembers every partition written, to delete them afterwards."""

    def __init__(self, inner: CqlStore) -> None:
        self.inner = inner
        self._written: dict[tuple[str, tuple[Any, ...]], tuple[Table, dict[str, Any]]] = {}
        self._timestamped: dict[str, Table] = {}

    def _note(self, table: Table, key: Mapping[str, Any]) -> None:
        partition = {c: key[c] for c in table.partition_key}
        self._written.setdefault((table.qualified_name, tuple(partition.values())), (table, partition))

    async def migrate(self, schema: Schema) -> int:
        return await self.inner.migrate(schema)

    async def insert(
        self,
        table: Table,
        row: Mapping[str, Any],
        *,
        if_not_exists: bool = False,
        ttl: int | None = None,
        timestamp: int | None = None,
    ) -> bool:
        self._note(table, row)
        if timestamp is not None:
            self._timestamped[table.qualified_name] = table
        return await self.inner.insert(table, row, if_not_exists=if_not_exists, ttl=ttl, timestamp=timestamp)

    async def insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self._note(table, row)
        await self.inner.insert_many(table, rows)

    async def update_many(self, table: Table, keys: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> None:
        for key in keys:
            self._note(table, key)
        await self.inner.update_many(table, keys, values)

    async def get(self, table: Table, key: Mapping[str, Any]) -> dict[str, Any] | None:
        return await self.inner.get(table, key)

    async def update(
        self,
        table: Table,
        key: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        if_: Mapping[str, Any] | None = None,
        if_exists: bool = False,
        ttl: int | None = None,
    ) -> bool:
        self._note(table, key)
        return await self.inner.update(table, key, values, if_=if_, if_exists=if_exists, ttl=ttl)

    async def delete(
        self,
        table: Table,
        key: Mapping[str, Any],
        *,
        if_: Mapping[str, Any] | None = None,
        if_exists: bool = False,
        timestamp: int | None = None,
    ) -> bool:
        return await self.inner.delete(table, key, if_=if_, if_exists=if_exists, timestamp=timestamp)

    async def query(
        self,
        table: Table,
        partition: Mapping[str, Any],
        *,
        limit: int,
        after: PagingState | None = None,
        reverse: bool = False,
        min_value: Any = None,
        max_value: Any = None,
    ) -> Page:
        return await self.inner.query(
            table, partition, limit=limit, after=after, reverse=reverse, min_value=min_value, max_value=max_value
        )

    async def scan(self, table: Table, *, limit: int, after: bytes | None = None) -> ScanPage:
        return await self.inner.scan(table, limit=limit, after=after)

    async def increment(self, table: Table, key: Mapping[str, Any], column: str, delta: int = 1) -> int:
        self._note(table, key)
        return await self.inner.increment(table, key, column, delta)

    async def close(self) -> None:
        """Deletes what the test wrote (the tables stay for the next test), then closes. Tables written with
        client write times are truncated instead: a partition tombstone at our "now" would hide the next test's
        writes whose event times are a few seconds in the past."""
        per_table: dict[str, list[tuple[Table, dict[str, Any]]]] = {}
        for table, partition in self._written.values():
            per_table.setdefault(table.qualified_name, []).append((table, partition))
        limit = asyncio.Semaphore(32)

        async def delete(table: Table, partition: dict[str, Any]) -> None:
            async with limit:
                await self.inner.delete(table, partition)

        try:
            for name, written in per_table.items():
                if name in self._timestamped or len(written) > TRUNCATE_ABOVE:
                    await self.inner.truncate_table(written[0][0])
                else:
                    await asyncio.gather(*(delete(t, p) for t, p in written))
        finally:
            self._written.clear()
            await self.inner.close()


@dataclass(frozen=True)
class Template:
    """A SQLite database copied once into the session's Cassandra, under a keyspace prefix of its own."""

    node: CassandraNode
    prefix: str
    path: Path  # the SQLite template (read, never written)
    schemas: tuple[Schema, ...]
    populated: frozenset[str]  # the tables the template has rows in
    stamped: frozenset[str]  # the tables whose template rows carry a TTL or a write time

    def open(self) -> RestoringStore:
        return RestoringStore(CqlStore(cql_config(self.node, self.prefix)), self)


async def copy_template(node: CassandraNode, path: Path, schemas: Sequence[Schema], workdir: Path) -> Template:
    """Copies the SQLite database at ``path`` into the session's Cassandra (``marquee copy``'s code)."""
    prefix = unique_prefix()
    source = SqliteStore(path)
    target = CqlStore(cql_config(node, prefix))
    populated: set[str] = set()
    stamped: set[str] = set()
    try:
        await copy_schemas(source, target, schemas, Checkpoint(workdir / "template-copy.json"))
        for schema in schemas:
            for table in tables_of(schema):
                after = None
                while True:
                    page = await source.scan(table, limit=1000, after=after)
                    populated.update(table.qualified_name for _ in page.rows[:1])
                    stamped.update(table.qualified_name for r in page.rows if r.ttl is not None or r.writetime)
                    if page.next is None:
                        break
                    after = page.next
    finally:
        await source.close()
        await target.close()
    return Template(node, prefix, path, tuple(schemas), frozenset(populated), frozenset(stamped))


class RestoringStore(CleanedStore):
    """A store on a :class:`Template`'s copy that puts back, when the test ends, every partition the test wrote or
    deleted: deleted, then the template's rows of it written again (tables written with client write times, or whose
    template rows carry them, are truncated and copied again whole). The next test starts on the template's data
    without a copy of it all."""

    def __init__(self, inner: CqlStore, template: Template) -> None:
        super().__init__(inner)
        self.template = template
        self._incremented: set[str] = set()

    async def delete(
        self,
        table: Table,
        key: Mapping[str, Any],
        *,
        if_: Mapping[str, Any] | None = None,
        if_exists: bool = False,
        timestamp: int | None = None,
    ) -> bool:
        self._note(table, key)
        return await super().delete(table, key, if_=if_, if_exists=if_exists, timestamp=timestamp)

    async def increment(self, table: Table, key: Mapping[str, Any], column: str, delta: int = 1) -> int:
        self._incremented.add(table.qualified_name)
        return await super().increment(table, key, column, delta)

    async def close(self) -> None:
        per_table: dict[str, list[tuple[Table, dict[str, Any]]]] = {}
        for table, partition in self._written.values():
            per_table.setdefault(table.qualified_name, []).append((table, partition))
        populated = self.template.populated
        limit = asyncio.Semaphore(32)

        async def delete(table: Table, partition: dict[str, Any]) -> None:
            async with limit:
                await self.inner.delete(table, partition)

        source = SqliteStore(self.template.path)
        try:
            counted = self._incremented & populated
            assert not counted, f"counters cannot be put back from the template: {sorted(counted)}"
            for schema in self.template.schemas:
                await source.migrate(schema)
            for name, written in per_table.items():
                table = written[0][0]
                if name in self._timestamped or name in self.template.stamped or len(written) > TRUNCATE_ABOVE:
                    await self.inner.truncate_table(table)
                    if name in populated:
                        await _copy_table(source, self.inner, table)
                    continue
                await asyncio.gather(*(delete(t, p) for t, p in written))
                if name in populated:
                    rows = [row for _, p in written for row in await _partition_rows(source, table, p)]
                    for start in range(0, len(rows), MAX_BATCH_ROWS):
                        await self.inner.insert_many(table, rows[start : start + MAX_BATCH_ROWS])
        finally:
            self._written.clear()
            await source.close()
            await self.inner.close()


async def _partition_rows(source: SqliteStore, table: Table, partition: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    after: PagingState | None = None
    while True:
        page = await source.query(table, partition, limit=1000, after=after)
        rows += page.rows
        if page.next is None:
            return rows
        after = page.next


async def _copy_table(source: SqliteStore, target: CqlStore, table: Table) -> None:
    after = None
    while True:
        page = await source.scan(table, limit=1000, after=after)
        await _write(target, table, page.rows)
        if page.next is None:
            return
        after = page.next


@pytest.fixture(scope="session")
def cql_prefix() -> str:
    """The session's keyspace prefix: service suites share their keyspaces across tests."""
    return unique_prefix()


async def open_test_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest, name: str = "test") -> CopyTarget:
    """A fresh store of ``kind``: a SQLite file under ``tmp_path``, or the session's Cassandra (cleaned after)."""
    if kind == "sqlite":
        from services.common.store.sqlite import SqliteStore

        return SqliteStore(tmp_path / f"{name}.db")
    node: CassandraNode = request.getfixturevalue("cassandra")
    prefix: str = request.getfixturevalue("cql_prefix")
    return CleanedStore(CqlStore(cql_config(node, prefix)))


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Parametrizes a suite over both stores: its fixtures open theirs with :func:`open_test_store`."""
    kind: str = request.param
    return kind


@pytest.fixture(params=STORES)
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Both stores, one after the other: SQLite, then the session's Cassandra."""
    store = await open_test_store(request.param, tmp_path, request)
    yield store
    await store.close()
