"""The distributed store: ScyllaDB or Apache Cassandra over CQL, with the ``scylla-driver`` package.

Mapping of the port (see port.py):

- Each :class:`Schema` keyspace is a CQL keyspace named ``{keyspace_prefix}{schema.keyspace}`` whose replication
  comes from configuration (SimpleStrategy with a factor, or NetworkTopologyStrategy with a factor per DC).
  Column types: text -> text, int -> bigint, float -> double, bool -> boolean, blob -> blob, json -> text.
- Reads and writes run at LOCAL_QUORUM (configurable); ``if_not_exists`` / ``if_`` / ``if_exists`` are
  lightweight transactions at LOCAL_SERIAL. Lightweight transactions on one partition from this process are
  queued locally (one Paxos round at a time per partition), so a process never contends with itself.
- ``ttl`` is ``USING TTL``; a hidden ``_expires`` column (unix seconds) lets ``update`` keep a row's remaining
  TTL like the port promises (it reads ``_expires`` before an update that sets no TTL).
- ``timestamp`` is ``USING TIMESTAMP``: the cell with the newest write time wins.
- ``increment`` is compare-and-set on the int column (exact new values, as the port returns them); a CQL counter
  cannot say what value its own increment produced.
- The port's paging state is the driver's paging state, sealed with an HMAC over the query it belongs to.
- Every driver call is asynchronous: the driver's ResponseFuture completes an asyncio future through
  ``loop.call_soon_threadsafe`` (no thread per call). Only idempotent statements are retried or speculatively
  executed (:class:`IdempotentRetryPolicy`); load balancing is token-aware over DC-aware round robin.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import secrets
import ssl
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from cassandra import (
    ConsistencyLevel,
    DriverException,
    InvalidRequest,
    OperationTimedOut,
    ProtocolVersion,
    RequestValidationException,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    RetryPolicy,
    TokenAwarePolicy,
)
from cassandra.query import BatchStatement, BatchType, PreparedStatement, Statement, tuple_factory

from services.common.config import CqlConfig
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
from services.common.store.schema import Column, Migration, Order, Schema, SchemaError, Table
from services.common.tasks import gather_bounded

log = logging.getLogger("marquee.store.cql")
# The driver logs every failed (re)connection attempt with a traceback at WARNING and ERROR; what matters reaches
# callers as StoreUnavailable (one line), so only its own errors pass, and none while the first connect is tried.
_driver_log = logging.getLogger("cassandra")
_driver_log.setLevel(logging.ERROR)

_CQL_TYPES = {"text": "text", "int": "bigint", "float": "double", "bool": "boolean", "blob": "blob", "json": "text"}
_EXPIRES = "_expires"  # hidden: the unix second a TTL'd row expires at (null: no TTL)
_STATE_TABLE = "_schema"  # per keyspace: the applied version and the migration lock
_LOCK_TTL = 300  # seconds: a migrator that dies releases its lock by expiry
_STATE_VERSION = 1
_MAC_BYTES = 16
_BATCH_STATEMENTS = 50  # statements per unlogged batch (one partition each): well under batch_size_fail_threshold
_PARALLEL = 64  # concurrent requests one bulk call keeps in flight
_CAS_ATTEMPTS = 100
_DDL_ATTEMPTS = 5
_T = TypeVar("_T")


def _schema_not_yet_agreed(exc: BaseException) -> bool:
    """Whether ``exc`` means a node has not yet applied a recent schema change (and agreement will mend it)."""
    text = str(exc)
    if isinstance(exc, InvalidRequest):
        return ("exist" in text or "unconfigured table" in text) and "already" not in text
    return isinstance(exc, StoreUnavailable) and "INCOMPATIBLE_SCHEMA" in text


def _q(name: str) -> str:
    return f'"{name}"'


def _encode(col: Column, value: Any) -> Any:
    if value is None:
        return None
    if col.type == "json":
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
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
    return value


class IdempotentRetryPolicy(RetryPolicy):  # type: ignore[misc]  # the driver is untyped
    """Retries a statement only when it is marked idempotent, once on the next host.

    The driver's default policy retries any statement after a connection error, which can apply a non-idempotent
    write (a lightweight transaction, a compare-and-set) twice; here such failures reach the caller, who is told
    the outcome is unknown (UNAVAILABLE) instead."""

    def on_read_timeout(
        self,
        query: Statement,
        consistency: int,
        required_responses: int,
        received_responses: int,
        data_retrieved: bool,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num == 0 and query.is_idempotent:
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None

    def on_write_timeout(
        self,
        query: Statement,
        consistency: int,
        write_type: str,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num == 0 and query.is_idempotent:
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None

    def on_unavailable(
        self, query: Statement, consistency: int, required_replicas: int, alive_replicas: int, retry_num: int
    ) -> tuple[int, int | None]:
        if retry_num == 0 and query.is_idempotent:
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None

    def on_request_error(
        self, query: Statement, consistency: int | None, error: Exception, retry_num: int
    ) -> tuple[int, int | None]:
        if retry_num < 2 and query.is_idempotent:
            return self.RETRY_NEXT_HOST, None
        return self.RETHROW, None


def _unavailable(exc: BaseException, what: str) -> StoreUnavailable:
    if isinstance(exc, NoHostAvailable):
        detail = "no replica answered"
    elif isinstance(exc, WriteTimeout) and getattr(exc, "write_type", None) in ("CAS", 5):
        detail = "a lightweight transaction timed out (its outcome is unknown)"
    else:
        detail = f"{type(exc).__name__}: {str(exc)[:200]}"
    return StoreUnavailable(f"the CQL cluster could not {what}: {detail}")


@dataclass(frozen=True)
class _Result:
    rows: list[tuple[Any, ...]]
    paging_state: bytes | None


class CqlStore:
    """A :class:`~services.common.store.port.Store` on a ScyllaDB or Cassandra cluster.

    The connection is made on first use (``connect()``); an unreachable cluster raises :class:`StoreUnavailable`
    naming the contact points. ``paging_secret`` seals paging states (replicas of a service share it)."""

    def __init__(self, config: CqlConfig, *, paging_secret: bytes | None = None) -> None:
        self._config = config
        self._secret = hashlib.sha256(b"marquee-cql-paging\0" + (paging_secret or secrets.token_bytes(32))).digest()
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._connecting = asyncio.Lock()
        self._tables: dict[str, Table] = {}
        self._prepared: dict[tuple[Any, ...], PreparedStatement] = {}
        self._partition_locks: dict[tuple[Any, ...], asyncio.Lock] = {}
        self._lock_users: defaultdict[tuple[Any, ...], int] = defaultdict(int)
        self._closed = False
        self._owner = uuid.uuid4().hex

    # -- connection -------------------------------------------------------------------------------------------

    def keyspace_name(self, keyspace: str) -> str:
        return f"{self._config.keyspace_prefix}{keyspace}"

    def _cql_name(self, t: Table) -> str:
        return f"{_q(self.keyspace_name(t.keyspace))}.{_q(t.name)}"

    def _build_cluster(self) -> Cluster:
        cfg = self._config
        consistency = ConsistencyLevel.name_to_value[cfg.consistency]
        serial = ConsistencyLevel.name_to_value[cfg.serial_consistency]
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=cfg.local_dc)),
            retry_policy=IdempotentRetryPolicy(),
            consistency_level=consistency,
            serial_consistency_level=serial,
            request_timeout=cfg.request_timeout,
            row_factory=tuple_factory,
            speculative_execution_policy=(
                ConstantSpeculativeExecutionPolicy(cfg.speculative_delay, cfg.speculative_executions)
                if cfg.speculative_executions > 0
                else None
            ),
        )
        hosts, ports = [], set()
        for point in cfg.contact_points:
            host, _, port = point.rpartition(":") if ":" in point else (point, "", "")
            hosts.append(host or point)
            ports.add(int(port) if port else 9042)
        if len(ports) != 1:
            raise StoreUnavailable(f"every contact point must use the same port: {', '.join(cfg.contact_points)}")
        auth = None
        if cfg.username:
            auth = PlainTextAuthProvider(username=cfg.username, password=cfg.password.get_secret_value())
        ssl_context = None
        if cfg.tls.enabled:
            ssl_context = ssl.create_default_context(cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None)
            ssl_context.check_hostname = cfg.tls.verify_hostname
            if cfg.tls.cert_file:
                ssl_context.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file) if cfg.tls.key_file else None)
        return Cluster(
            hosts,
            port=ports.pop(),
            protocol_version=ProtocolVersion.V4 if cfg.protocol_version == 4 else ProtocolVersion.V5,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            auth_provider=auth,
            ssl_context=ssl_context,
            connect_timeout=cfg.connect_timeout,
            control_connection_timeout=cfg.connect_timeout,
            max_schema_agreement_wait=int(cfg.schema_agreement_wait),
            compression=False,
        )

    async def connect(self) -> Session:
        """Connect once (in a thread: the driver's connect blocks); later calls return the session."""
        if self._session is not None:
            return self._session
        if self._closed:
            raise StoreUnavailable("the store is closed")
        async with self._connecting:
            if self._session is None:
                cluster = self._build_cluster()
                _driver_log.setLevel(logging.CRITICAL)
                try:
                    session = await asyncio.to_thread(cluster.connect)
                except (NoHostAvailable, DriverException, OSError) as exc:
                    await asyncio.to_thread(cluster.shutdown)
                    points = ", ".join(self._config.contact_points)
                    raise StoreUnavailable(
                        f"cannot reach the CQL cluster at {points} (local DC {self._config.local_dc}): {_reason(exc)}"
                    ) from None
                finally:
                    _driver_log.setLevel(logging.ERROR)
                self._cluster, self._session = cluster, session
        assert self._session is not None
        return self._session

    async def _execute(
        self,
        statement: Statement | str,
        params: Sequence[Any] | None = None,
        *,
        what: str,
        paging_state: bytes | None = None,
    ) -> _Result:
        session = await self.connect()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Result] = loop.create_future()
        try:
            rf: ResponseFuture = session.execute_async(statement, params, paging_state=paging_state)
        except (DriverException, OSError) as exc:
            raise _unavailable(exc, what) from None

        def settle(result: _Result | BaseException) -> None:
            if done.done():
                return
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                done.set_result(result)

        def on_rows(rows: list[tuple[Any, ...]]) -> None:
            loop.call_soon_threadsafe(settle, _Result(list(rows or ()), rf._paging_state))

        def on_error(exc: BaseException) -> None:
            loop.call_soon_threadsafe(settle, exc)

        rf.add_callbacks(on_rows, on_error)
        try:
            return await done
        except InvalidRequest as exc:
            if "paging state" in str(exc).lower():
                raise InvalidKeyError("paging state does not belong to this query") from None
            raise
        except RequestValidationException:  # a statement the server refuses: a bug, not an outage
            raise
        except (DriverException, ConnectionException, OSError) as exc:  # timeouts, lost replicas, broken connections
            raise _unavailable(exc, what) from None

    async def _prepare(self, key: tuple[Any, ...], cql: str, *, idempotent: bool) -> PreparedStatement:
        """The statement for ``key`` (a shape: what, the table's :func:`_shape`, options), prepared once."""
        prepared = self._prepared.get(key)
        if prepared is None:
            session = await self.connect()
            try:
                made: PreparedStatement = await asyncio.to_thread(session.prepare, cql)
            except (NoHostAvailable, OperationTimedOut) as exc:
                raise _unavailable(exc, "prepare a statement") from None
            made.is_idempotent = idempotent
            self._prepared[key] = prepared = made
        return prepared

    @asynccontextmanager
    async def _serialised(self, t: Table, key: Mapping[str, Any]) -> AsyncIterator[None]:
        """One lightweight transaction at a time per partition from this process (no Paxos contention here)."""
        lock_key = (t.qualified_name, *(key[c] for c in t.partition_key))
        lock = self._partition_locks.get(lock_key)
        if lock is None:
            lock = self._partition_locks[lock_key] = asyncio.Lock()
        self._lock_users[lock_key] += 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[lock_key] -= 1
            if self._lock_users[lock_key] == 0:
                del self._lock_users[lock_key]
                del self._partition_locks[lock_key]

    def _known(self, table: Table) -> Table:
        known = self._tables.get(table.qualified_name)
        if known is None:
            raise SchemaError(
                f"table {table.keyspace}.{table.name} is not migrated: call migrate() with its schema first"
            )
        return known

    # -- schema -----------------------------------------------------------------------------------------------

    def _replication(self) -> str:
        cfg = self._config
        if cfg.datacenters:
            factors = ", ".join(f"'{dc}': {n}" for dc, n in sorted(cfg.datacenters.items()))
            return f"{{'class': 'NetworkTopologyStrategy', {factors}}}"
        return f"{{'class': 'SimpleStrategy', 'replication_factor': {cfg.replication_factor}}}"

    async def _once_agreed(self, op: Callable[[], Awaitable[_T]], what: str) -> _T:
        """Run a schema step (a change, or a statement on a table just made). On a cluster it may reach a node
        that has not yet heard of the last change (the driver's own wait for agreement can time out on a busy
        cluster): then wait for every node to agree on the schema and try again."""
        for attempt in range(_DDL_ATTEMPTS):
            try:
                return await op()
            except (InvalidRequest, StoreUnavailable) as exc:
                if not _schema_not_yet_agreed(exc) or attempt == _DDL_ATTEMPTS - 1:
                    raise
                assert self._session is not None
                log.info("schema not yet agreed (%s): waiting for the nodes before trying to %s again", exc, what)
                await asyncio.to_thread(
                    self._session.wait_for_schema_agreement, wait_time=self._config.schema_agreement_wait
                )
        raise AssertionError("unreachable")

    async def _ddl(self, cql: str) -> None:
        await self._once_agreed(lambda: self._execute(cql, what="change the schema"), "change the schema")

    async def _prepare_agreed(self, key: tuple[Any, ...], cql: str, *, idempotent: bool) -> PreparedStatement:
        return await self._once_agreed(lambda: self._prepare(key, cql, idempotent=idempotent), "prepare")

    async def _state(self, ks: str) -> int:
        async def read() -> int:
            stmt = await self._prepare(
                ("state", ks),
                f"SELECT version FROM {_q(ks)}.{_q(_STATE_TABLE)} WHERE name = 'version'",
                idempotent=True,
            )
            stmt.consistency_level = ConsistencyLevel.name_to_value[self._config.serial_consistency]
            rows = (await self._execute(stmt, (), what="read the schema version")).rows
            return int(rows[0][0]) if rows and rows[0][0] is not None else 0

        return await self._once_agreed(read, "read the schema version")

    async def migrate(self, schema: Schema) -> int:
        ks = self.keyspace_name(schema.keyspace)
        await self.connect()
        if _STATE_TABLE not in self._existing_columns(ks):  # a new keyspace (schema changes are slow: only then)
            options = f" AND {self._config.keyspace_options}" if self._config.keyspace_options else ""
            await self._ddl(f"CREATE KEYSPACE IF NOT EXISTS {_q(ks)} WITH replication = {self._replication()}{options}")
            await self._ddl(
                f"CREATE TABLE IF NOT EXISTS {_q(ks)}.{_q(_STATE_TABLE)}"
                " (name text PRIMARY KEY, version bigint, owner text)"
            )
        tables = _tables_of(schema)
        current = await self._state(ks)
        if current > schema.version:
            raise SchemaTooNewError(
                f"keyspace {ks} is at schema version {current}, newer than this code's {schema.version}:"
                " run the newer release (or roll the data back); refusing to start"
            )
        if current < schema.version:
            await self._apply(ks, schema, current)
        for t in tables.values():
            self._tables[t.qualified_name] = t
        return schema.version

    async def _apply(self, ks: str, schema: Schema, current: int) -> None:
        """Apply pending migrations under the keyspace's LWT lock (replicas starting together wait for one)."""
        lock = await self._prepare_agreed(
            ("lock", ks),
            f"INSERT INTO {_q(ks)}.{_q(_STATE_TABLE)} (name, owner) VALUES ('lock', ?)"
            f" IF NOT EXISTS USING TTL {_LOCK_TTL}",
            idempotent=False,
        )
        unlock = await self._prepare_agreed(
            ("unlock", ks),
            f"DELETE FROM {_q(ks)}.{_q(_STATE_TABLE)} WHERE name = 'lock' IF owner = ?",
            idempotent=False,
        )
        bump = await self._prepare_agreed(
            ("bump", ks),
            f"UPDATE {_q(ks)}.{_q(_STATE_TABLE)} SET version = ? WHERE name = 'version' IF version = ?",
            idempotent=False,
        )
        first = await self._prepare_agreed(
            ("first", ks),
            f"INSERT INTO {_q(ks)}.{_q(_STATE_TABLE)} (name, version) VALUES ('version', ?) IF NOT EXISTS",
            idempotent=False,
        )
        deadline = time.monotonic() + _LOCK_TTL + 60
        while True:
            if (await self._execute(lock, (self._owner,), what="take the migration lock")).rows[0][0]:
                break
            await asyncio.sleep(0.5)  # another replica migrates: wait for it, then re-read
            current = await self._state(ks)
            if current >= schema.version:
                return
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"the migration lock of keyspace {ks} was not released")
        try:
            current = await self._state(ks)
            for migration in schema.migrations:
                if migration.version <= current:
                    continue
                await self._migration(ks, schema, migration)
                if current == 0:
                    ok = (await self._execute(first, (migration.version,), what="record a migration")).rows[0][0]
                else:
                    ok = (await self._execute(bump, (migration.version, current), what="record a migration")).rows[0][0]
                if not ok:
                    raise StoreUnavailable(f"keyspace {ks} changed version while this process held its lock")
                current = migration.version
                log.info("keyspace %s migrated to version %d", ks, current)
        finally:
            await self._execute(unlock, (self._owner,), what="release the migration lock")

    async def _migration(self, ks: str, schema: Schema, migration: Migration) -> None:
        tables = _tables_of(schema, upto=migration.version)
        for t in migration.create_tables:
            await self._ddl(_create_cql(ks, t))
        existing = self._existing_columns(ks)
        for table_name, col in migration.add_columns:
            if table_name not in tables:
                raise SchemaError(f"migration {migration.version} adds a column to unknown {table_name}")
            if col.name in existing.get(table_name, set()):
                continue  # applied before a crash that lost the version bump
            try:
                await self._ddl(f"ALTER TABLE {_q(ks)}.{_q(table_name)} ADD {_q(col.name)} {_CQL_TYPES[col.type]}")
            except InvalidRequest as exc:
                if "already exist" not in str(exc).lower():
                    raise

    def _existing_columns(self, ks: str) -> dict[str, set[str]]:
        assert self._cluster is not None
        meta = self._cluster.metadata.keyspaces.get(ks)
        if meta is None:
            return {}
        return {name: set(t.columns) for name, t in meta.tables.items()}

    # -- rows -------------------------------------------------------------------------------------------------

    def _select_cols(self, t: Table) -> str:
        return ", ".join([*(_q(c.name) for c in t.columns), _q(_EXPIRES)])

    def _where(self, cols: Sequence[str]) -> str:
        return " AND ".join(f"{_q(c)} = ?" for c in cols)

    def _row(self, t: Table, values: Sequence[Any]) -> Row:
        return {c.name: _decode(c, v) for c, v in zip(t.columns, values, strict=False)}

    async def _read(self, t: Table, key: Mapping[str, Any]) -> tuple[Row, int | None] | None:
        stmt = await self._prepare(
            ("get", _shape(t)),
            f"SELECT {self._select_cols(t)} FROM {self._cql_name(t)} WHERE {self._where(t.primary_key)}",
            idempotent=True,
        )
        params = [_encode(t.column(k), key[k]) for k in t.primary_key]
        rows = (await self._execute(stmt, params, what=f"read {t.keyspace}.{t.name}")).rows
        if not rows:
            return None
        return self._row(t, rows[0]), rows[0][-1]

    async def get(self, table: Table, key: Mapping[str, Any]) -> Row | None:
        t = self._known(table)
        check_key(t, key)
        found = await self._read(t, key)
        return None if found is None else found[0]

    @staticmethod
    def _ttl(ttl: int | None) -> int:
        if ttl is None:
            return 0
        if ttl <= 0:
            raise InvalidKeyError("ttl must be a positive number of seconds")
        return ttl

    @staticmethod
    def _remaining(expires: int | None) -> int:
        """USING TTL for a write that keeps a row's expiry (0: the row has none)."""
        if expires is None:
            return 0
        return max(1, math.ceil(expires - time.time()))

    def _insert_cql(self, t: Table, *, lwt: bool, timestamp: bool) -> str:
        names = [*(c.name for c in t.columns), _EXPIRES]
        using = "USING TTL ? AND TIMESTAMP ?" if timestamp else "USING TTL ?"
        return (
            f"INSERT INTO {self._cql_name(t)} ({', '.join(_q(n) for n in names)})"
            f" VALUES ({', '.join('?' * len(names))}){' IF NOT EXISTS' if lwt else ''} {using}"
        )

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
        seconds = self._ttl(ttl)
        stmt = await self._prepare(
            ("insert", _shape(t), if_not_exists, timestamp is not None),
            self._insert_cql(t, lwt=if_not_exists, timestamp=timestamp is not None),
            idempotent=not if_not_exists,
        )
        params: list[Any] = [_encode(c, row.get(c.name)) for c in t.columns]
        params += [int(time.time()) + seconds if seconds else None, seconds]
        if timestamp is not None:
            params.append(timestamp)
        what = f"write {t.keyspace}.{t.name}"
        if not if_not_exists:
            await self._execute(stmt, params, what=what)
            return True
        async with self._serialised(t, row):
            return bool((await self._execute(stmt, params, what=what)).rows[0][0])

    async def insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        t = self._known(table)
        if len(rows) > MAX_BATCH_ROWS:
            raise InvalidKeyError(f"a batch holds at most {MAX_BATCH_ROWS} rows, got {len(rows)}")
        for row in rows:
            check_key(t, {k: row.get(k) for k in t.primary_key})
            for name, value in row.items():
                check_value(t, name, value)
        if not rows:
            return
        stmt = await self._prepare(
            ("insert", _shape(t), False, False), self._insert_cql(t, lwt=False, timestamp=False), idempotent=True
        )
        bound = [(row, [*(_encode(c, row.get(c.name)) for c in t.columns), None, 0]) for row in rows]
        await self._batches(t, bound, stmt, what=f"write {t.keyspace}.{t.name}")

    async def _batches(
        self,
        t: Table,
        bound: Sequence[tuple[Mapping[str, Any], Sequence[Any]]],
        stmt: PreparedStatement | Callable[[Sequence[Any]], PreparedStatement],
        *,
        what: str,
    ) -> None:
        """Unlogged batches of one partition each (what a coordinator applies cheaply), many in flight."""
        groups: dict[tuple[Any, ...], list[Sequence[Any]]] = defaultdict(list)
        for key, params in bound:
            groups[tuple(key[c] for c in t.partition_key)].append(params)
        batches: list[BatchStatement] = []
        for params_list in groups.values():
            for start in range(0, len(params_list), _BATCH_STATEMENTS):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                batch.is_idempotent = True
                for params in params_list[start : start + _BATCH_STATEMENTS]:
                    batch.add(stmt(params) if callable(stmt) else stmt, params)
                batches.append(batch)
        await gather_bounded([partial(self._execute, b, what=what) for b in batches], _PARALLEL)

    @staticmethod
    def _check_values(t: Table, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            if name in t.primary_key:
                raise InvalidKeyError(f"{t.name}.{name} is part of the primary key and cannot be updated")
            check_value(t, name, value)

    def _update_cql(self, t: Table, names: Sequence[str], *, if_: Sequence[str], if_exists: bool) -> str:
        sets = ", ".join(f"{_q(n)} = ?" for n in names)
        cql = f"UPDATE {self._cql_name(t)} USING TTL ? SET {sets} WHERE {self._where(t.primary_key)}"
        if if_exists:
            cql += " IF EXISTS"
        elif if_:
            cql += " IF " + " AND ".join(f"{_q(n)} = ?" for n in if_)
        return cql

    async def _update_stmt(
        self, t: Table, names: Sequence[str], if_: Sequence[str] = (), if_exists: bool = False
    ) -> PreparedStatement:
        return await self._prepare(
            ("update", _shape(t), tuple(names), tuple(if_), if_exists),
            self._update_cql(t, names, if_=if_, if_exists=if_exists),
            idempotent=not (if_ or if_exists),
        )

    async def update_many(self, table: Table, keys: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> None:
        t = self._known(table)
        if len(keys) > MAX_BATCH_ROWS:
            raise InvalidKeyError(f"a batch holds at most {MAX_BATCH_ROWS} rows, got {len(keys)}")
        self._check_values(t, values)
        for key in keys:
            check_key(t, key)
        if not keys or not values:
            return
        names = list(values)
        stmt = await self._update_stmt(t, names)
        found = await gather_bounded([partial(self._read, t, k) for k in keys], _PARALLEL)
        ttls = [self._remaining(f[1] if f else None) for f in found]
        encoded = [_encode(t.column(n), values[n]) for n in names]
        bound = [
            (key, [ttl, *encoded, *(_encode(t.column(k), key[k]) for k in t.primary_key)])
            for key, ttl in zip(keys, ttls, strict=True)
        ]
        await self._batches(t, bound, stmt, what=f"write {t.keyspace}.{t.name}")

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
        seconds = self._ttl(ttl)
        values = dict(values)
        what = f"write {t.keyspace}.{t.name}"
        conditional = bool(if_) or if_exists
        if seconds:
            values[_EXPIRES] = int(time.time()) + seconds
        if not conditional:
            found = None if seconds else await self._read(t, key)
            if not seconds and found is None:
                # a new row: INSERT gives it a row marker, so it exists even when every value set is null
                row = {**{k: key[k] for k in t.primary_key}, **values}
                names = list(row)
                stmt = await self._prepare(
                    ("insert-some", _shape(t), tuple(names)),
                    f"INSERT INTO {self._cql_name(t)} ({', '.join(_q(n) for n in names)})"
                    f" VALUES ({', '.join('?' * len(names))})",
                    idempotent=True,
                )
                await self._execute(stmt, [_encode(t.column(n), v) for n, v in row.items()], what=what)
                return True
            seconds = seconds or self._remaining(found[1] if found else None)
        names = list(values)
        stmt = await self._update_stmt(t, names, tuple(if_ or ()), if_exists and not if_)
        params: list[Any] = [None]  # the TTL, below
        params += [v if n == _EXPIRES else _encode(t.column(n), v) for n, v in values.items()]
        params += [_encode(t.column(k), key[k]) for k in t.primary_key]
        params += [_encode(t.column(n), v) for n, v in (if_ or {}).items()]
        if not conditional:
            params[0] = seconds
            await self._execute(stmt, params, what=what)
            return True
        async with self._serialised(t, key):
            if not seconds:
                found = await self._read(t, key)
                seconds = self._remaining(found[1] if found else None)
            params[0] = seconds
            return bool((await self._execute(stmt, params, what=what)).rows[0][0])

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
        for name, value in (if_ or {}).items():
            check_value(t, name, value)
        cols = t.primary_key if full else t.partition_key
        cond = ""
        if if_:
            cond = " IF " + " AND ".join(f"{_q(n)} = ?" for n in if_)
        elif if_exists:
            cond = " IF EXISTS"
        using = " USING TIMESTAMP ?" if timestamp is not None else ""
        stmt = await self._prepare(
            ("delete", _shape(t), full, tuple(if_ or ()), if_exists and not if_, bool(using)),
            f"DELETE FROM {self._cql_name(t)}{using} WHERE {self._where(cols)}{cond}",
            idempotent=not cond,
        )
        params: list[Any] = [timestamp] if using else []
        params += [_encode(t.column(k), key[k]) for k in cols]
        params += [_encode(t.column(n), v) for n, v in (if_ or {}).items()]
        what = f"delete from {t.keyspace}.{t.name}"
        if not cond:
            await self._execute(stmt, params, what=what)
            return True
        async with self._serialised(t, key):
            return bool((await self._execute(stmt, params, what=what)).rows[0][0])

    # -- partitions -------------------------------------------------------------------------------------------

    def _seal(self, state: bytes, fingerprint: bytes) -> PagingState:
        mac = hmac.new(self._secret, fingerprint + state, hashlib.sha256).digest()[:_MAC_BYTES]
        return bytes([_STATE_VERSION]) + mac + state

    def _unseal(self, sealed: PagingState, fingerprint: bytes) -> bytes:
        if len(sealed) <= 1 + _MAC_BYTES or sealed[0] != _STATE_VERSION:
            raise InvalidKeyError("paging state is malformed")
        mac, state = sealed[1 : 1 + _MAC_BYTES], sealed[1 + _MAC_BYTES :]
        expected = hmac.new(self._secret, fingerprint + state, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            raise InvalidKeyError("paging state does not belong to this query")
        return state

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
        where = [self._where(t.partition_key)]
        params: list[Any] = [_encode(t.column(k), partition[k]) for k in t.partition_key]
        for bound, op in ((min_value, ">="), (max_value, "<=")):
            if ck and bound is not None:
                check_value(t, ck[0][0], bound)
                where.append(f"{_q(ck[0][0])} {op} ?")
                params.append(_encode(t.column(ck[0][0]), bound))
        order = ""
        if ck and reverse:
            flipped = [f"{_q(c)} {'DESC' if o is Order.ASC else 'ASC'}" for c, o in ck]
            order = " ORDER BY " + ", ".join(flipped)
        shape = ("query", _shape(t), reverse, min_value is not None, max_value is not None)
        stmt = await self._prepare(
            shape,
            f"SELECT {self._select_cols(t)} FROM {self._cql_name(t)} WHERE {' AND '.join(where)}{order}",
            idempotent=True,
        )
        fingerprint = json.dumps([t.qualified_name, [repr(p) for p in params], reverse], separators=(",", ":")).encode()
        state = self._unseal(after, fingerprint) if after else None
        bound = stmt.bind(params)
        bound.fetch_size = limit
        result = await self._execute(bound, what=f"read {t.keyspace}.{t.name}", paging_state=state)
        rows = [self._row(t, r) for r in result.rows]
        nxt = self._seal(result.paging_state, fingerprint) if result.paging_state and ck else None
        return Page(rows, nxt)

    async def scan(self, table: Table, *, limit: int, after: bytes | None = None) -> ScanPage:
        """Every row of ``table`` in token order, a page at a time (maintenance only: a full scan). ``after`` is
        the driver's own paging state, unsealed: scans are for operators' tools, not for clients."""
        t = self._known(table)
        if not 0 < limit <= MAX_QUERY_LIMIT:
            raise InvalidKeyError(f"limit must be between 1 and {MAX_QUERY_LIMIT}")
        regular = [c.name for c in t.columns if c.name not in t.primary_key]
        writetime = f"WRITETIME({_q(regular[0] if regular else _EXPIRES)})"  # key-only tables: null
        stmt = await self._prepare(
            ("scan", _shape(t)),
            f"SELECT {self._select_cols(t)}, {writetime} FROM {self._cql_name(t)}",
            idempotent=True,
        )
        bound = stmt.bind(())
        bound.fetch_size = limit
        result = await self._execute(bound, what=f"scan {t.keyspace}.{t.name}", paging_state=after or None)
        now = time.time()
        rows = [
            ScannedRow(
                self._row(t, r),
                None if r[-2] is None else max(1, math.ceil(r[-2] - now)),
                r[-1],
            )
            for r in result.rows
        ]
        return ScanPage(rows, result.paging_state)

    async def increment(self, table: Table, key: Mapping[str, Any], column: str, delta: int = 1) -> int:
        t = self._known(table)
        check_key(t, key)
        if t.column(column).type != "int" or column in t.primary_key:
            raise InvalidKeyError(f"{t.name}.{column} is not an int column that can count")
        async with self._serialised(t, key):
            for _ in range(_CAS_ATTEMPTS):
                found = await self._read_serial(t, key)
                if found is None:
                    row = {c.name: None for c in t.columns} | dict(key) | {column: delta}
                    stmt = await self._prepare(
                        ("insert", _shape(t), True, False),
                        self._insert_cql(t, lwt=True, timestamp=False),
                        idempotent=False,
                    )
                    params = [_encode(c, row[c.name]) for c in t.columns] + [None, 0]
                    if (await self._execute(stmt, params, what=f"count in {t.keyspace}.{t.name}")).rows[0][0]:
                        return delta
                    continue
                current, expires = found
                value = int(current.get(column) or 0) + delta
                stmt = await self._update_stmt(t, [column], (column,))
                params = [
                    self._remaining(expires),
                    value,
                    *(_encode(t.column(k), key[k]) for k in t.primary_key),
                    current.get(column),
                ]
                if (await self._execute(stmt, params, what=f"count in {t.keyspace}.{t.name}")).rows[0][0]:
                    return value
                await asyncio.sleep(secrets.randbelow(10) / 1000)
        raise StoreUnavailable(f"{t.keyspace}.{t.name}.{column} is contended: too many concurrent increments")

    async def _read_serial(self, t: Table, key: Mapping[str, Any]) -> tuple[Row, int | None] | None:
        """A linearizable read (LOCAL_SERIAL): sees every lightweight transaction that completed."""
        stmt = await self._prepare(
            ("get-serial", _shape(t)),
            f"SELECT {self._select_cols(t)} FROM {self._cql_name(t)} WHERE {self._where(t.primary_key)}",
            idempotent=True,
        )
        stmt.consistency_level = ConsistencyLevel.name_to_value[self._config.serial_consistency]
        params = [_encode(t.column(k), key[k]) for k in t.primary_key]
        rows = (await self._execute(stmt, params, what=f"read {t.keyspace}.{t.name}")).rows
        return None if not rows else (self._row(t, rows[0]), rows[0][-1])

    # -- maintenance ------------------------------------------------------------------------------------------

    async def truncate_table(self, table: Table) -> None:
        """Empty a migrated table, keeping its schema (tests)."""
        t = self._known(table)
        await self._execute(f"TRUNCATE {self._cql_name(t)}", what=f"truncate {t.keyspace}.{t.name}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)


def _shape(t: Table) -> tuple[str, int]:
    """A cheap cache key for a table's statements: migrations only ever add columns."""
    return t.qualified_name, len(t.columns)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NoHostAvailable) and exc.errors:
        first = next(iter(exc.errors.values()))
        return f"{type(first).__name__}: {str(first)[:160]}"
    return f"{type(exc).__name__}: {str(exc)[:160]}"


def _tables_of(schema: Schema, upto: int | None = None) -> dict[str, Table]:
    """The tables as of migration ``upto`` (all of them by default), with the columns migrations added."""
    tables: dict[str, Table] = {}
    for migration in schema.migrations:
        if upto is not None and migration.version > upto:
            break
        for t in migration.create_tables:
            tables[t.name] = t
        for table_name, col in migration.add_columns:
            if table_name not in tables:
                raise SchemaError(f"migration {migration.version} adds a column to unknown {table_name}")
            t = tables[table_name]
            tables[table_name] = Table(
                t.name, (*t.columns, col), t.partition_key, t.clustering_key, keyspace=t.keyspace
            )
    return tables


def _create_cql(ks: str, t: Table) -> str:
    cols = [f"{_q(c.name)} {_CQL_TYPES[c.type]}" for c in t.columns] + [f"{_q(_EXPIRES)} bigint"]
    pk = "(" + ", ".join(_q(c) for c in t.partition_key) + ")"
    if t.clustering_key:
        pk += ", " + ", ".join(_q(c) for c, _ in t.clustering_key)
    cql = f"CREATE TABLE IF NOT EXISTS {_q(ks)}.{_q(t.name)} ({', '.join(cols)}, PRIMARY KEY ({pk}))"
    if t.clustering_key:
        order = ", ".join(f"{_q(c)} {o.value}" for c, o in t.clustering_key)
        cql += f" WITH CLUSTERING ORDER BY ({order})"
    return cql
