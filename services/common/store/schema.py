"""Table definitions: the data model every store adapter implements.

A table is keyed by a partition key (equality reads only) and an optional clustering key (the order of rows
inside a partition). That is all a read can use: no joins, no secondary indexes, no scans. A service declares
its tables and the migrations that create or extend them in a :class:`Schema`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Literal

ColumnType = Literal["text", "int", "float", "bool", "blob", "json"]
COLUMN_TYPES: tuple[str, ...] = ("text", "int", "float", "bool", "blob", "json")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


class SchemaError(ValueError):
    """A table or schema definition is invalid, or a call names a table/column that does not exist."""


class Order(Enum):
    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True)
class Column:
    """``int`` is a signed 64-bit integer; ``json`` holds dicts/lists/scalars; times are int microseconds."""

    name: str
    type: ColumnType

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise SchemaError(f"column name {self.name!r} must match {_NAME_RE.pattern}")
        if self.type not in COLUMN_TYPES:
            raise SchemaError(f"column {self.name}: type {self.type!r} is not one of {COLUMN_TYPES}")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    partition_key: tuple[str, ...]
    clustering_key: tuple[tuple[str, Order], ...] = ()
    keyspace: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        for label, value in (("table", self.name), ("keyspace", self.keyspace)):
            if not _NAME_RE.match(value):
                raise SchemaError(f"{label} name {value!r} must match {_NAME_RE.pattern}")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise SchemaError(f"table {self.name}: duplicate column names")
        if not self.partition_key:
            raise SchemaError(f"table {self.name}: a partition key is required")
        keys = list(self.partition_key) + [c for c, _ in self.clustering_key]
        if len(set(keys)) != len(keys):
            raise SchemaError(f"table {self.name}: a column appears twice in the primary key")
        for key in keys:
            if key not in names:
                raise SchemaError(f"table {self.name}: key column {key!r} is not a column")
            if self.column(key).type in ("json", "float"):
                raise SchemaError(f"table {self.name}: key column {key!r} cannot be {self.column(key).type}")

    @property
    def qualified_name(self) -> str:
        return f"{self.keyspace}__{self.name}"

    @cached_property
    def clustering_columns(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.clustering_key)

    @cached_property
    def primary_key(self) -> tuple[str, ...]:
        return self.partition_key + self.clustering_columns

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise SchemaError(f"table {self.name} has no column {name!r}")

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)


@dataclass(frozen=True)
class Migration:
    """One schema version: tables to create and columns to add to existing tables."""

    version: int
    create_tables: tuple[Table, ...] | list[Table] = ()
    add_columns: tuple[tuple[str, Column], ...] | list[tuple[str, Column]] = ()


@dataclass(frozen=True)
class Schema:
    keyspace: str
    migrations: tuple[Migration, ...] | list[Migration]

    def __post_init__(self) -> None:
        versions = [m.version for m in self.migrations]
        if versions != sorted(set(versions)) or any(v < 1 for v in versions):
            raise SchemaError(f"schema {self.keyspace}: migration versions must be unique, increasing, from 1")
        for m in self.migrations:
            for t in m.create_tables:
                if t.keyspace != self.keyspace:
                    raise SchemaError(f"table {t.name} belongs to keyspace {t.keyspace!r}, not {self.keyspace!r}")

    @property
    def version(self) -> int:
        return max((m.version for m in self.migrations), default=0)
