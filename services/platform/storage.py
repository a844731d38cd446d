"""`marquee migrate` and `marquee copy`: the operator's side of the store.

    marquee migrate [--only NAME ...]
        apply every service's pending schema migrations to the configured store (services also do it at start;
        a keyspace newer than this release is refused)
    marquee copy [--from SPEC] [--to SPEC] [--checkpoint FILE] [--restart] [--only NAME ...]
        copy every service's data from one store to another (by default: the all-in-one's SQLite file to the
        configured CQL cluster), resumable, then verified table by table by row counts and checksums

SPEC is ``sqlite:PATH`` or ``cql:HOST:PORT[,HOST:PORT...]`` (the other CQL settings come from ``[store.cql]``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

import services
from services.common.config import CqlConfig, PlatformConfig
from services.common.store.copy import Checkpoint, CopyTarget, copy_schemas, verify
from services.common.store.port import StoreError
from services.common.store.schema import Schema
from services.common.store.sqlite import SqliteStore
from services.platform.cli import platform_config


def service_schemas(only: list[str] | None = None) -> list[Schema]:
    """Every service's schema (``services/<name>/schema.py`` exposing ``SCHEMA``), in name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(services.__path__), key=lambda i: i.name):
        if not info.ispkg or (only and info.name not in only):
            continue
        try:
            module = importlib.import_module(f"services.{info.name}.schema")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{info.name}.schema":
                raise
            continue
        schema = getattr(module, "SCHEMA", None)
        if isinstance(schema, Schema):
            found.append(schema)
    return found


def open_spec(spec: str, config: PlatformConfig) -> CopyTarget:
    """A store from ``sqlite:PATH`` or ``cql:HOST:PORT,...``."""
    kind, _, rest = spec.partition(":")
    if kind == "sqlite" and rest:
        return SqliteStore(Path(rest))
    if kind == "cql":
        from services.common.store.cql import CqlStore

        cql = config.store.cql
        if rest:
            cql = CqlConfig.model_validate({**cql.model_dump(), "contact_points": rest.split(",")})
        return CqlStore(cql)
    raise SystemExit(f"marquee: {spec!r} is not sqlite:PATH or cql:HOST:PORT[,HOST:PORT...]")


def _cmd_migrate(args: argparse.Namespace) -> int:
    from services.platform.runtime import platform_store

    config = platform_config(args)

    async def go() -> None:
        store = platform_store(config)
        try:
            for schema in service_schemas(args.only):
                print(f"{schema.keyspace}: schema version {await store.migrate(schema)}")
        finally:
            await store.close()

    try:
        asyncio.run(go())
    except StoreError as exc:
        print(f"marquee migrate: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_copy(args: argparse.Namespace) -> int:
    config = platform_config(args)
    source_spec = args.source or f"sqlite:{config.sqlite_path}"
    target_spec = args.target or "cql:"
    checkpoint_path: Path = args.checkpoint or config.data_dir / "copy-checkpoint.json"
    if args.restart:
        checkpoint_path.unlink(missing_ok=True)
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)

    def progress(table: str, rows: int) -> None:
        print(f"\r  {table}: {rows} rows", end="", flush=True)

    async def go() -> bool:
        source, target = open_spec(source_spec, config), open_spec(target_spec, config)
        try:
            schemas = service_schemas(args.only)
            print(f"copying {source_spec} -> {target_spec} (checkpoint {checkpoint_path})")
            copied = await copy_schemas(source, target, schemas, Checkpoint(checkpoint_path), progress=progress)
            print(f"\rcopied {sum(copied.values())} rows in {len(copied)} tables" + " " * 40)
            print("verifying (row counts and checksums of every table on both sides)")
            ok = True
            for report in await verify(source, target, schemas):
                mark = "ok" if report.verified else "DIFFERS"
                print(f"  {report.table:<40} {report.source.rows:>9} rows  {mark}")
                ok = ok and report.verified
            return ok
        finally:
            await source.close()
            await target.close()

    try:
        ok = asyncio.run(go())
    except StoreError as exc:
        print(f"\nmarquee copy: {exc} (run it again: it resumes from {checkpoint_path})", file=sys.stderr)
        return 1
    if not ok:
        print(
            "marquee copy: some tables differ (was the source written meanwhile? run with --restart)", file=sys.stderr
        )
        return 1
    print("every table verified")
    return 0


def register(sub: Any) -> None:
    migrate = sub.add_parser("migrate", help="apply every service's pending schema migrations to the store")
    migrate.add_argument("--only", nargs="*", default=None, help="only these services' schemas")
    migrate.set_defaults(func=_cmd_migrate)
    copy = sub.add_parser("copy", help="copy every service's data between stores (SQLite -> CQL), verified")
    copy.add_argument("--from", dest="source", default=None, help="sqlite:PATH (default: the all-in-one's file)")
    copy.add_argument("--to", dest="target", default=None, help="cql:HOST:PORT,... (default: [store.cql])")
    copy.add_argument("--checkpoint", type=Path, default=None, help="progress file (default: DATA_DIR/...)")
    copy.add_argument("--restart", action="store_true", help="forget the checkpoint and copy everything again")
    copy.add_argument("--only", nargs="*", default=None, help="only these services' data")
    copy.set_defaults(func=_cmd_copy)
