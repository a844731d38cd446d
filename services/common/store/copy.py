"""Copying every table of some schemas from one store to another (``marquee copy``): resumable and verified.

Rows are read with the source's maintenance scan a page at a time and upserted into the target (the schema is
migrated there first), keeping each row's remaining TTL and, for timestamped tables, its write time, so the
target's last-write-wins order is the source's. After each page the position is saved in a checkpoint file:
a copy that stopped (a crash, Ctrl-C, a lost node) resumes where it was; copying a page twice is harmless
(upserts). Verification scans both sides and compares each table's row count and an order-independent checksum
of its rows (the sum of a SHA-256 per canonical row), so a missing or altered row shows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from services.common.store.port import MAX_BATCH_ROWS, Row, Scannable, ScannedRow, Store
from services.common.store.schema import Schema, Table
from services.common.tasks import gather_bounded

PAGE_ROWS = 1000
_PARALLEL = 32
_DONE = "done"


class CopyTarget(Store, Scannable, Protocol):
    """A store that can be copied into and verified: every adapter is one."""


def tables_of(schema: Schema) -> list[Table]:
    """The schema's tables as its last migration leaves them."""
    tables: dict[str, Table] = {}
    for migration in schema.migrations:
        for t in migration.create_tables:
            tables[t.name] = t
        for name, col in migration.add_columns:
            t = tables[name]
            tables[name] = Table(t.name, (*t.columns, col), t.partition_key, t.clustering_key, keyspace=t.keyspace)
    return list(tables.values())


class Checkpoint:
    """Where each table's copy stands, in a JSON file rewritten atomically after every page."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._state: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def position(self, table: Table) -> bytes | str | None:
        value = self._state.get(table.qualified_name)
        if value is None or value == _DONE:
            return value
        return base64.b64decode(value)

    def save(self, table: Table, position: bytes | None) -> None:
        self._state[table.qualified_name] = _DONE if position is None else base64.b64encode(position).decode()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class TableCount:
    rows: int
    checksum: str


@dataclass(frozen=True)
class TableReport:
    table: str
    source: TableCount
    target: TableCount

    @property
    def verified(self) -> bool:
        return self.source == self.target


def _digest(row: Row) -> int:
    canonical = json.dumps(
        row, sort_keys=True, separators=(",", ":"), default=lambda v: base64.b64encode(bytes(v)).decode()
    )
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:16], "big")


async def count(store: Scannable, table: Table) -> TableCount:
    """Rows and the order-independent checksum of ``table`` (a full scan)."""
    rows, total, after = 0, 0, None
    while True:
        page = await store.scan(table, limit=PAGE_ROWS, after=after)
        rows += len(page.rows)
        total = (total + sum(_digest(r.row) for r in page.rows)) % 2**128
        if page.next is None:
            return TableCount(rows, f"{total:032x}")
        after = page.next


async def _write(target: Store, table: Table, rows: Sequence[ScannedRow]) -> None:
    plain = [r.row for r in rows if r.ttl is None and r.writetime is None]
    for start in range(0, len(plain), MAX_BATCH_ROWS):
        await target.insert_many(table, plain[start : start + MAX_BATCH_ROWS])
    kept = [r for r in rows if r.ttl is not None or r.writetime is not None]
    await gather_bounded(
        [partial(target.insert, table, r.row, ttl=r.ttl, timestamp=r.writetime) for r in kept], _PARALLEL
    )


async def copy_schemas(
    source: Scannable,
    target: CopyTarget,
    schemas: Sequence[Schema],
    checkpoint: Checkpoint,
    *,
    progress: Callable[[str, int], Any] = lambda table, rows: None,
) -> dict[str, int]:
    """Copy every table of ``schemas`` from ``source`` to ``target``; returns the rows this run wrote per table."""
    copied: dict[str, int] = {}
    for schema in schemas:
        await source.migrate(schema)
        await target.migrate(schema)
        for table in tables_of(schema):
            name = f"{table.keyspace}.{table.name}"
            copied[name] = 0
            position = checkpoint.position(table)
            if position == _DONE:
                continue
            after = position if isinstance(position, bytes) else None
            while True:
                page = await source.scan(table, limit=PAGE_ROWS, after=after)
                await _write(target, table, page.rows)
                copied[name] += len(page.rows)
                checkpoint.save(table, page.next)
                progress(name, copied[name])
                if page.next is None:
                    break
                after = page.next
    return copied


async def verify(source: Scannable, target: Scannable, schemas: Sequence[Schema]) -> list[TableReport]:
    """Row counts and checksums of every table on both sides."""
    reports = []
    for schema in schemas:
        for table in tables_of(schema):
            reports.append(
                TableReport(f"{table.keyspace}.{table.name}", await count(source, table), await count(target, table))
            )
    return reports
