"""The storage port: what services may ask of a store. Every adapter passes tests/common/store_conformance.py.

Semantics follow CQL so the ScyllaDB adapter is a direct mapping:

- ``insert`` writes a whole row (upsert); ``if_not_exists`` makes it a lightweight transaction that applies only
  when no live row has that primary key, and returns whether it applied.
- ``insert`` with ``timestamp`` (microseconds) is last-write-wins by that write time (CQL ``USING TIMESTAMP``):
  the row is written only where it is newer than the write time of what is stored, whoever writes it and in
  whatever order the writes arrive; ties keep either write. A table written with timestamps is written only so
  (never by ``update``, ``increment`` or conditional writes) and deleted with a ``timestamp`` too: such a delete
  removes what was written at or before that time (a row written later survives it). In CQL the delete also
  hides writes older than it that arrive after it; SQLite keeps no such tombstone.
- ``insert_many`` upserts many rows of one table (an unlogged batch in CQL): every row is validated before any is
  written, each row is atomic, the batch as a whole is not; at most :data:`MAX_BATCH_ROWS` rows.
- ``update_many`` sets the same columns to the same values in many rows of one table (upserts, an unlogged batch
  in CQL): every key is validated before any row is written; at most :data:`MAX_BATCH_ROWS` rows.
- ``update`` sets columns of one row (an upsert unless ``if_exists`` or ``if_`` is given); ``if_`` applies only
  when the row exists and every named column equals the given value (compare-and-set).
- ``delete`` removes one row (full primary key) or a whole partition (partition key only); ``if_exists`` /
  ``if_`` make it conditional and report whether a row was deleted.
- ``query`` reads one partition in clustering order (or reversed), at most ``limit`` rows, optionally bounded on
  the first clustering column, resuming after an opaque :data:`PagingState`.
- ``increment`` adds to an int column atomically (a counter) and returns the new value.
- ``ttl`` (seconds) makes a written row expire; expired rows are invisible to every read and condition; an
  ``update`` without ``ttl`` keeps the row's expiry.
- ``migrate`` applies a schema's pending migrations once, whoever calls it concurrently, and refuses
  (:class:`SchemaTooNewError`) a keyspace already at a version newer than the schema it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.store.schema import Schema, SchemaError, Table

PagingState = bytes
Row = dict[str, Any]

MAX_QUERY_LIMIT = 5000
MAX_BATCH_ROWS = 5000


class StoreError(Exception):
    """Base of store failures other than schema mistakes."""


class InvalidKeyError(StoreError, ValueError):
    """A key or value does not fit the table: a missing key column, an unknown column, a wrong type."""


class StoreUnavailable(StoreError):
    """The backing database cannot be reached, lost a replica mid-call, or is closed: try again later."""


class SchemaTooNewError(StoreError):
    """The stored schema is newer than the code: this release must not run on that data."""


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next: PagingState | None  # None: no more rows


@dataclass(frozen=True)
class ScannedRow:
    row: Row
    ttl: int | None  # seconds left, or None
    writetime: int | None  # the write time of a timestamped write (microseconds), where the store knows it


@dataclass(frozen=True)
class ScanPage:
    rows: list[ScannedRow]
    next: bytes | None  # None: the table is done; otherwise resume here (valid across processes)


class Scannable(Protocol):
    """What maintenance tools (``marquee copy``) need beyond the port: whole-table scans. Services never scan."""

    async def migrate(self, schema: Schema) -> int: ...

    async def scan(self, table: Table, *, limit: int, after: bytes | None = None) -> ScanPage: ...


class Store(Protocol):
    async def migrate(self, schema: Schema) -> int:
        """Apply pending migrations of ``schema``; returns the version now in force. Idempotent."""
        ...

    async def insert(
        self,
        table: Table,
        row: Mapping[str, Any],
        *,
        if_not_exists: bool = False,
        ttl: int | None = None,
        timestamp: int | None = None,
    ) -> bool: ...

    async def insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None: ...

    async def update_many(self, table: Table, keys: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> None: ...

    async def get(self, table: Table, key: Mapping[str, Any]) -> Row | None: ...

    async def update(
        self,
        table: Table,
        key: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        if_: Mapping[str, Any] | None = None,
        if_exists: bool = False,
        ttl: int | None = None,
    ) -> bool: ...

    async def delete(
        self,
        table: Table,
        key: Mapping[str, Any],
        *,
        if_: Mapping[str, Any] | None = None,
        if_exists: bool = False,
        timestamp: int | None = None,
    ) -> bool: ...

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
    ) -> Page: ...

    async def increment(self, table: Table, key: Mapping[str, Any], column: str, delta: int = 1) -> int: ...

    async def close(self) -> None: ...


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "blob": (bytes, bytearray, memoryview),
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_value(table: Table, column: str, value: Any) -> None:
    """InvalidKeyError unless ``value`` fits ``column`` (None is allowed for non-key columns)."""
    try:
        col = table.column(column)
    except SchemaError as exc:
        raise InvalidKeyError(str(exc)) from exc
    if value is None:
        if column in table.primary_key:
            raise InvalidKeyError(f"{table.name}.{column} is part of the primary key and cannot be null")
        return
    if col.type == "json":
        return
    allowed = _PY_TYPES[col.type]
    if col.type in ("int", "float") and isinstance(value, bool):
        raise InvalidKeyError(f"{table.name}.{column} is {col.type}, got bool")
    if not isinstance(value, allowed):
        raise InvalidKeyError(f"{table.name}.{column} is {col.type}, got {type(value).__name__}")
    if col.type == "int" and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidKeyError(f"{table.name}.{column} is out of the 64-bit range")


def check_key(table: Table, key: Mapping[str, Any], *, partition_only_ok: bool = False) -> bool:
    """Validate a key; returns True when it is a full primary key, False for a partition key only."""
    for name in key:
        if name not in table.primary_key:
            raise InvalidKeyError(f"{table.name}: {name!r} is not a key column")
    missing_pk = [c for c in table.partition_key if c not in key]
    if missing_pk:
        raise InvalidKeyError(f"{table.name}: missing partition key column(s) {missing_pk}")
    missing_ck = [c for c in table.clustering_columns if c not in key]
    if missing_ck and not (partition_only_ok and len(missing_ck) == len(table.clustering_columns)):
        raise InvalidKeyError(f"{table.name}: missing clustering key column(s) {missing_ck}")
    for name, value in key.items():
        check_value(table, name, value)
    return not missing_ck


def check_query(
    table: Table, partition: Mapping[str, Any], limit: int, paged: bool, min_value: Any, max_value: Any
) -> None:
    """Validate a query's arguments (exactly the partition key, a limit in range, no paging or bounds without a
    clustering key): both adapters refuse the same queries with the same message."""
    if set(partition) != set(table.partition_key):
        raise InvalidKeyError(f"{table.name}: query needs exactly the partition key {list(table.partition_key)}")
    check_key(table, partition, partition_only_ok=True)
    if not 0 < limit <= MAX_QUERY_LIMIT:
        raise InvalidKeyError(f"limit must be between 1 and {MAX_QUERY_LIMIT}")
    if not table.clustering_key and (paged or min_value is not None or max_value is not None):
        raise InvalidKeyError(f"{table.name} has no clustering key to page or filter on")


def check_timestamp(timestamp: int | None, conditional: bool) -> None:
    """InvalidKeyError unless ``timestamp`` is None or a positive 64-bit microsecond time on a plain write."""
    if timestamp is None:
        return
    if conditional:
        raise InvalidKeyError("a write time cannot be given to a conditional write")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 < timestamp <= INT64_MAX:
        raise InvalidKeyError("timestamp must be a positive int of microseconds")
