"""The storage port: what services may ask of a store. Every adapter passes tests/common/store_conformance.py.

Semantics follow CQL so the ScyllaDB adapter is a direct mapping:

- ``insert`` writes a whole row (upsert); ``if_not_exists`` makes it a lightweight transaction that applies only
  when no live row has that primary key, and returns whether it applied.
- ``insert_many`` upserts many rows of one table (an unlogged batch in CQL): every row is validated before any is
  written, each row is atomic, the batch as a whole is not; at most :data:`MAX_BATCH_ROWS` rows.
- ``update`` sets columns of one row (an upsert unless ``if_exists`` or ``if_`` is given); ``if_`` applies only
  when the row exists and every named column equals the given value (compare-and-set).
- ``delete`` removes one row (full primary key) or a whole partition (partition key only); ``if_exists`` /
  ``if_`` make it conditional and report whether a row was deleted.
- ``query`` reads one partition in clustering order (or reversed), at most ``limit`` rows, optionally bounded on
  the first clustering column, resuming after an opaque :data:`PagingState`.
- ``increment`` adds to an int column atomically (a counter) and returns the new value.
- ``ttl`` (seconds) makes a written row expire; expired rows are invisible to every read and condition.
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
    """The backing database cannot be reached or is closed."""


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next: PagingState | None  # None: no more rows


class Store(Protocol):
    async def migrate(self, schema: Schema) -> int:
        """Apply pending migrations of ``schema``; returns the version now in force. Idempotent."""
        ...

    async def insert(
        self, table: Table, row: Mapping[str, Any], *, if_not_exists: bool = False, ttl: int | None = None
    ) -> bool: ...

    async def insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None: ...

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
