"""The embedded store: SQLite in WAL mode, one table per (keyspace, table), read by primary key only.

Durability: ``synchronous=FULL`` in WAL mode, so a write that returned has been fsynced and survives a process
kill or a power cut. All statements run on one dedicated thread (SQLite serialises writers anyway), so asyncio
callers never block the event loop, and lightweight transactions (read, compare, write) are atomic because
they run as one ``BEGIN IMMEDIATE`` transaction on that thread.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from services.common.store.port import (
    MAX_BATCH_ROWS,
    MAX_QUERY_LIMIT,
    InvalidKeyError,
    Page,
    PagingState,
    Row,
    ScannedRow,
    ScanPage,
    SchemaTooNewError,
    StoreUnavailable,
    check_key,
    check_query,
    check_timestamp,
    check_value,
)
from services.common.store.schema import Column, Order, Schema, SchemaError, Table

T = TypeVar("T")

_SQL_TYPES = {
    "text": "TEXT",
    "int": "INTEGER",
    "float": "REAL",
    "bool": "INTEGER",
    "blob": "BLOB",
    "json": "TEXT",
}
_EXPIRES = "_expires_at"  # unix seconds (REAL) or NULL: the row's TTL deadline
_WRITETIME = "_writetime"  # microseconds of a timestamped write (last write wins), or NULL


def _q(name: str) -> str:
    return f'"{name}"'


def _encode(col: Column, value: Any) -> Any:
    if value is None:
        return None
    if col.type == "json":
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if col.type == "bool":
        return 1 if value else 0
    if col.type == "blob":
        return bytes(value)
    if col.type == "float":
        return float(value)
    return value


def _decode(col: Column, value: Any) -> Any:
    if value is None:
        return None
    if col.type == "json":
        return json.loads(value)
    if col.type == "bool":
        return bool(value)
    return value


class SqliteStore:
    """A :class:`~services.common.store.port.Store` on one SQLite database file."""

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        self._busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._tables: dict[str, Table] = {}
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (keyspace TEXT NOT NULL, version INTEGER NOT NULL,"
                " applied_at REAL NOT NULL, PRIMARY KEY (keyspace, version)) WITHOUT ROWID"
            )
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _known(self, table: Table) -> Table:
        known = self._tables.get(table.qualified_name)
        if known is None:
            raise SchemaError(
                f"table {table.keyspace}.{table.name} is not migrated: call migrate() with its schema first"
            )
        return known

    def _live(self) -> str:
        return f"({_EXPIRES} IS NULL OR {_EXPIRES} > ?)"

    # -- schema -----------------------------------------------------------------------------------------------

    async def migrate(self, schema: Schema) -> int:
        def apply(conn: sqlite3.Connection) -> int:
            done = {
                v for (v,) in conn.execute("SELECT version FROM _migrations WHERE keyspace = ?", (schema.keyspace,))
            }
            if done and max(done) > schema.version:
                raise SchemaTooNewError(
                    f"keyspace {schema.keyspace} is at schema version {max(done)}, newer than this code's"
                    f" {schema.version}: run the newer release (or roll the data back); refusing to start"
                )
            tables: dict[str, Table] = {}
            for migration in schema.migrations:
                for t in migration.create_tables:
                    tables[t.name] = t
                for table_name, col in migration.add_columns:
                    if table_name not in tables:
                        raise SchemaError(f"migration {migration.version} adds a column to unknown {table_name}")
                    t = tables[table_name]
                    tables[table_name] = Table(
                        t.name, (*t.columns, col), t.partition_key, t.clustering_key, keyspace=t.keyspace
                    )
                if migration.version in done:
                    continue

                def body(m: Any = migration, ts: dict[str, Table] = tables) -> None:
                    # another process on the same file may have applied it since the read above: look again
                    # inside this (BEGIN IMMEDIATE) transaction, which no other writer can interleave with
                    applied = conn.execute(
                        "SELECT 1 FROM _migrations WHERE keyspace = ? AND version = ?", (schema.keyspace, m.version)
                    ).fetchone()
                    if applied:
                        return
                    for t in m.create_tables:
                        conn.execute(self._create_sql(t))
                    for table_name, col in m.add_columns:
                        conn.execute(
                            f"ALTER TABLE {_q(ts[table_name].qualified_name)} ADD COLUMN {_q(col.name)}"
                            f" {_SQL_TYPES[col.type]}"
                        )
                    conn.execute(
                        "INSERT INTO _migrations (keyspace, version, applied_at) VALUES (?, ?, ?)",
                        (schema.keyspace, m.version, time.time()),
                    )

                self._transaction(conn, body)
            for t in tables.values():
                present = {r[1] for r in conn.execute(f"PRAGMA table_info({_q(t.qualified_name)})")}
                if _WRITETIME not in present:  # a database made before timestamped writes
                    conn.execute(f"ALTER TABLE {_q(t.qualified_name)} ADD COLUMN {_WRITETIME} INTEGER")
                self._tables[t.qualified_name] = t
            return schema.version

        return await self._run(apply)

    @staticmethod
    def _create_sql(t: Table) -> str:
        cols = [f"{_q(c.name)} {_SQL_TYPES[c.type]}" for c in t.columns]
        cols += [f"{_EXPIRES} REAL", f"{_WRITETIME} INTEGER"]
        pk = [_q(c) for c in t.partition_key] + [f"{_q(c)} {o.value}" for c, o in t.clustering_key]
        return (
            f"CREATE TABLE IF NOT EXISTS {_q(t.qualified_name)} ({', '.join(cols)}, PRIMARY KEY ({', '.join(pk)}))"
            " WITHOUT ROWID"
        )

    # -- rows -------------------------------------------------------------------------------------------------

    def _row(self, t: Table, names: list[str], values: tuple[Any, ...]) -> Row:
        return {n: _decode(t.column(n), v) for n, v in zip(names, values, strict=True)}

    def _select_one(self, conn: sqlite3.Connection, t: Table, key: Mapping[str, Any]) -> Row | None:
        names = [c.name for c in t.columns]
        where = " AND ".join(f"{_q(k)} = ?" for k in t.primary_key)
        sql = f"SELECT {', '.join(_q(n) for n in names)} FROM {_q(t.qualified_name)} WHERE {where} AND {self._live()}"
        params = [_encode(t.column(k), key[k]) for k in t.primary_key] + [time.time()]
        found = conn.execute(sql, params).fetchone()
        return None if found is None else self._row(t, names, found)

    @staticmethod
    def _expiry(ttl: int | None) -> float | None:
        if ttl is None:
            return None
        if ttl <= 0:
            raise InvalidKeyError("ttl must be a positive number of seconds")
        return time.time() + ttl

    def _upsert(
        self,
        conn: sqlite3.Connection,
        t: Table,
        row: Mapping[str, Any],
        expires: float | None,
        writetime: int | None = None,
    ) -> None:
        names = list(row)
        cols = ", ".join([*(_q(n) for n in names), _EXPIRES, _WRITETIME])
        marks = ", ".join("?" * (len(names) + 2))
        params = [_encode(t.column(n), row[n]) for n in names] + [expires, writetime]
        conn.execute(f"INSERT OR REPLACE INTO {_q(t.qualified_name)} ({cols}) VALUES ({marks})", params)

    def _set(
        self,
        conn: sqlite3.Connection,
        t: Table,
        key: Mapping[str, Any],
        values: Mapping[str, Any],
        expires: float | None,
    ) -> None:
        """UPDATE existing row's columns, keeping its TTL unless a new one is given."""
        sets = [f"{_q(n)} = ?" for n in values]
        params = [_encode(t.column(n), v) for n, v in values.items()]
        if expires is not None:
            sets.append(f"{_EXPIRES} = ?")
            params.append(expires)
        if not sets:
            return
        where = " AND ".join(f"{_q(k)} = ?" for k in t.primary_key)
        params += [_encode(t.column(k), key[k]) for k in t.primary_key]
        conn.execute(f"UPDATE {_q(t.qualified_name)} SET {', '.join(sets)} WHERE {where}", params)

    async def insert(
        self,
        table: Table,
        row: Mapping[str, Any],
        *,
        if_not_exists: bool = False,
        ttl: int | None = None,
        timestamp: int | None = None,
    ) -> bool:
        t = self._known(table)
        check_key(t, {k: row.get(k) for k in t.primary_key})
        for name, value in row.items():
            check_value(t, name, value)
        check_timestamp(timestamp, if_not_exists)
        full = {c.name: row.get(c.name) for c in t.columns}
        expires = self._expiry(ttl)

        def run(conn: sqlite3.Connection) -> bool:
            def body() -> bool:
                if if_not_exists and self._select_one(conn, t, full) is not None:
                    return False
                if timestamp is not None and self._newer_stored(conn, t, full, timestamp):
                    return True  # like CQL: the write happened, and an older write time loses
                self._upsert(conn, t, full, expires, timestamp)
                return True

            return self._transaction(conn, body)

        return await self._run(run)

    def _newer_stored(self, conn: sqlite3.Connection, t: Table, key: Mapping[str, Any], timestamp: int) -> bool:
        where = " AND ".join(f"{_q(k)} = ?" for k in t.primary_key)
        found = conn.execute(
            f"SELECT {_WRITETIME} FROM {_q(t.qualified_name)} WHERE {where} AND {self._live()}",
            [_encode(t.column(k), key[k]) for k in t.primary_key] + [time.time()],
        ).fetchone()
        return found is not None and found[0] is not None and found[0] >= timestamp

    async def insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        t = self._known(table)
        if len(rows) > MAX_BATCH_ROWS:
            raise InvalidKeyError(f"a batch holds at most {MAX_BATCH_ROWS} rows, got {len(rows)}")
        full_rows = []
        for row in rows:
            check_key(t, {k: row.get(k) for k in t.primary_key})
            for name, value in row.items():
                check_value(t, name, value)
            full_rows.append({c.name: row.get(c.name) for c in t.columns})

        def run(conn: sqlite3.Connection) -> None:
            def body() -> None:
                for full in full_rows:
                    self._upsert(conn, t, full, None)

            self._transaction(conn, body)

        await self._run(run)

    async def update_many(self, table: Table, keys: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> None:
        t = self._known(table)
        if len(keys) > MAX_BATCH_ROWS:
            raise InvalidKeyError(f"a batch holds at most {MAX_BATCH_ROWS} rows, got {len(keys)}")
        self._check_values(t, values)
        for key in keys:
            check_key(t, key)

        def run(conn: sqlite3.Connection) -> None:
            def body() -> None:
                for key in keys:
                    if self._select_one(conn, t, key) is None:
                        self._upsert(conn, t, {c.name: None for c in t.columns} | dict(key) | dict(values), None)
                    else:
                        self._set(conn, t, key, values, None)

            self._transaction(conn, body)

        if keys:
            await self._run(run)

    @staticmethod
    def _check_values(t: Table, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            if name in t.primary_key:
                raise InvalidKeyError(f"{t.name}.{name} is part of the primary key and cannot be updated")
            check_value(t, name, value)

    async def get(self, table: Table, key: Mapping[str, Any]) -> Row | None:
        t = self._known(table)
        check_key(t, key)
        return await self._run(lambda conn: self._select_one(conn, t, key))

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
        t = self._known(table)
        check_key(t, key)
        self._check_values(t, values)
        for name, value in (if_ or {}).items():
            if name in t.primary_key:
                raise InvalidKeyError(f"{t.name}.{name} is a key column; conditions are on other columns")
            check_value(t, name, value)
        expires = self._expiry(ttl)

        def run(conn: sqlite3.Connection) -> bool:
            def body() -> bool:
                current = self._select_one(conn, t, key)
                if current is None:
                    if if_exists or if_:
                        return False
                    self._upsert(conn, t, {c.name: None for c in t.columns} | dict(key) | dict(values), expires)
                    return True
                if if_ and any(current.get(k) != v for k, v in if_.items()):
                    return False
                self._set(conn, t, key, values, expires)
                return True

            return self._transaction(conn, body)

        return await self._run(run)

    async def delete(
        self,
        table: Table,
        key: Mapping[str, Any],
        *,
        if_: Mapping[str, Any] | None = None,
        if_exists: bool = False,
        timestamp: int | None = None,
    ) -> bool:
        t = self._known(table)
        full = check_key(t, key, partition_only_ok=True)
        if (if_ or if_exists) and not full:
            raise InvalidKeyError(f"{t.name}: conditional deletes need the full primary key")
        check_timestamp(timestamp, bool(if_ or if_exists))
        cols = t.primary_key if full else t.partition_key
        where = " AND ".join(f"{_q(k)} = ?" for k in cols)
        params = [_encode(t.column(k), key[k]) for k in cols]
        if timestamp is not None:
            where += f" AND ({_WRITETIME} IS NULL OR {_WRITETIME} <= ?)"
            params.append(timestamp)

        def run(conn: sqlite3.Connection) -> bool:
            def body() -> bool:
                if if_ or if_exists:
                    current = self._select_one(conn, t, key)
                    if current is None or (if_ and any(current.get(k) != v for k, v in if_.items())):
                        return False
                cur = conn.execute(f"DELETE FROM {_q(t.qualified_name)} WHERE {where}", params)
                return cur.rowcount > 0 or not (if_ or if_exists)

            return self._transaction(conn, body)

        return await self._run(run)

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
        t = self._known(table)
        check_query(t, partition, limit, bool(after), min_value, max_value)
        ck = list(t.clustering_key)
        where = [f"{_q(k)} = ?" for k in t.partition_key] + [self._live()]
        params: list[Any] = [_encode(t.column(k), partition[k]) for k in t.partition_key] + [time.time()]
        if ck and min_value is not None:
            check_value(t, ck[0][0], min_value)
            where.append(f"{_q(ck[0][0])} >= ?")
            params.append(_encode(t.column(ck[0][0]), min_value))
        if ck and max_value is not None:
            check_value(t, ck[0][0], max_value)
            where.append(f"{_q(ck[0][0])} <= ?")
            params.append(_encode(t.column(ck[0][0]), max_value))
        # direction of travel per clustering column
        dirs = [(c, (o is Order.ASC) != reverse) for c, o in ck]
        if after:
            last = self._decode_state(after, len(ck))
            ors = []
            for i, (col, ascending) in enumerate(dirs):
                eqs = [f"{_q(dirs[j][0])} = ?" for j in range(i)]
                ors.append("(" + " AND ".join([*eqs, f"{_q(col)} {'>' if ascending else '<'} ?"]) + ")")
                params += [_encode(t.column(dirs[j][0]), last[j]) for j in range(i)]
                params.append(_encode(t.column(col), last[i]))
            where.append("(" + " OR ".join(ors) + ")")
        order = ", ".join(f"{_q(c)} {'ASC' if asc else 'DESC'}" for c, asc in dirs)
        names = [c.name for c in t.columns]
        sql = f"SELECT {', '.join(_q(n) for n in names)} FROM {_q(t.qualified_name)} WHERE {' AND '.join(where)}"
        if order:
            sql += f" ORDER BY {order}"
        sql += " LIMIT ?"
        params.append(limit + 1)

        def run(conn: sqlite3.Connection) -> Page:
            raw = conn.execute(sql, params).fetchall()
            rows = [self._row(t, names, r) for r in raw[:limit]]
            nxt = None
            if len(raw) > limit and ck:
                nxt = json.dumps([rows[-1][c] for c, _ in ck]).encode()
            return Page(rows, nxt)

        return await self._run(run)

    @staticmethod
    def _decode_state(state: PagingState, n: int) -> list[Any]:
        try:
            values = json.loads(state)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidKeyError("paging state is malformed") from exc
        if not isinstance(values, list) or len(values) != n:
            raise InvalidKeyError("paging state does not belong to this table")
        return values

    async def scan(self, table: Table, *, limit: int, after: bytes | None = None) -> ScanPage:
        """Every live row of ``table`` in primary-key order, a page at a time (maintenance only: a full scan)."""
        t = self._known(table)
        if not 0 < limit <= MAX_QUERY_LIMIT:
            raise InvalidKeyError(f"limit must be between 1 and {MAX_QUERY_LIMIT}")
        names = [c.name for c in t.columns]
        pk = ", ".join(_q(k) for k in t.primary_key)
        where = [self._live()]
        params: list[Any] = [time.time()]
        if after:
            last = self._decode_state(after, len(t.primary_key))
            where.append(f"({pk}) > ({', '.join('?' * len(last))})")
            params += [_encode(t.column(k), v) for k, v in zip(t.primary_key, last, strict=True)]
        sql = (
            f"SELECT {', '.join(_q(n) for n in names)}, {_EXPIRES}, {_WRITETIME} FROM {_q(t.qualified_name)}"
            f" WHERE {' AND '.join(where)} ORDER BY {pk} LIMIT ?"
        )
        params.append(limit + 1)

        def run(conn: sqlite3.Connection) -> ScanPage:
            raw = conn.execute(sql, params).fetchall()
            now = time.time()
            rows = [
                ScannedRow(
                    self._row(t, names, r[: len(names)]),
                    None if r[-2] is None else max(1, int(r[-2] - now + 0.999)),
                    r[-1],
                )
                for r in raw[:limit]
            ]
            nxt = json.dumps([rows[-1].row[k] for k in t.primary_key]).encode() if len(raw) > limit else None
            return ScanPage(rows, nxt)

        return await self._run(run)

    async def increment(self, table: Table, key: Mapping[str, Any], column: str, delta: int = 1) -> int:
        t = self._known(table)
        check_key(t, key)
        if t.column(column).type != "int" or column in t.primary_key:
            raise InvalidKeyError(f"{t.name}.{column} is not an int column that can count")

        def run(conn: sqlite3.Connection) -> int:
            def body() -> int:
                current = self._select_one(conn, t, key)
                if current is None:
                    self._upsert(conn, t, {c.name: None for c in t.columns} | dict(key) | {column: delta}, None)
                    return delta
                value = int(current.get(column) or 0) + delta
                self._set(conn, t, key, {column: value}, None)
                return value

            return self._transaction(conn, body)

        return await self._run(run)

    async def close(self) -> None:
        if self._closed:
            return

        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(shut)
        self._closed = True
        self._conn = None
        self._executor.shutdown(wait=True)

    # -- introspection for tests ------------------------------------------------------------------------------

    async def explain(self, sql: str, params: tuple[Any, ...] = ()) -> list[str]:
        """EXPLAIN QUERY PLAN details for ``sql`` (tests check reads use the primary key)."""
        return await self._run(lambda conn: [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)])

    async def pragma(self, name: str) -> Any:
        return await self._run(lambda conn: conn.execute(f"PRAGMA {name}").fetchone()[0])
