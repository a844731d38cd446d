"""The `marquee` command.

    marquee up [--config FILE] [--data-dir DIR] [--ephemeral-ports] [--only NAME ...] [--verbose] [--log-format F]
    marquee up --distributed [--replicas N] [--redis URL] [--cql HOST:PORT | --store sqlite]
                                          every service as its own processes, N replicas each (services/platform/
                                          distributed.py)
    marquee serve NAME [--ready-file FILE]   one service, as a container runs it
    marquee <service commands>   e.g. `marquee accounts create ...`, registered by services/<name>/cli.py

A service adds commands by giving ``services/<name>/cli.py`` a ``register(subparsers)`` function; nothing here
lists them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import services
from services.common.config import ConfigError, CqlConfig, PlatformConfig, load_config
from services.common.logs import configure_logging
from services.platform.plugins import discover

DEFAULT_REPLICAS = 2  # `marquee up --distributed`: replicas of each gRPC service


def platform_config(args: argparse.Namespace) -> PlatformConfig:
    """The platform config from --config / $MARQUEE_CONFIG, the environment, and --data-dir."""
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return load_config(args.config, **overrides)


def _with_store(config: PlatformConfig, kind: str | None, cql: str | None) -> PlatformConfig:
    """``--store`` / ``--cql`` over the configured ``[store]``."""
    store = config.store
    if kind:
        store = store.model_copy(update={"kind": kind})
    if cql and cql != "local":
        points = {**store.cql.model_dump(), "contact_points": cql.split(",")}
        store = store.model_copy(update={"kind": "cql", "cql": CqlConfig.model_validate(points)})
    return config.model_copy(update={"store": store})


def _cmd_up(args: argparse.Namespace) -> int:
    from services.common.store.port import StoreError
    from services.platform import supervisor
    from services.platform.localredis import RedisServerError

    distributed = bool(args.distributed)
    if not distributed and (args.redis or args.replicas is not None):
        print("marquee up: --redis and --replicas go with --distributed", file=sys.stderr)
        return 2
    if distributed and args.replicas is not None and args.replicas < 1:
        print("marquee up: --replicas must be at least 1", file=sys.stderr)
        return 2
    if distributed and args.store is None and args.cql is None:
        args.cql = "local"  # the distributed topology runs on CQL: a node of our own unless one is named
    config = _with_store(platform_config(args), args.store, args.cql)
    log_file = config.data_dir / "logs" / "marquee.log"
    if args.verbose or args.log_format:
        configure_logging(config.logging.level, args.log_format or "text", file=log_file)
    else:
        configure_logging(config.logging.level, config.logging.format, file=log_file, console="calm")
    node = None
    if args.cql == "local":  # a Cassandra node of our own under the data directory, for as long as we run
        from services.common.store.cassandra_node import local_node

        print("starting a local Cassandra node (about 30 s; its data stays in the data directory)", flush=True)
        node, config = local_node(config)
    only = set(args.only) if args.only else None
    try:
        if distributed:
            from services.platform import distributed as topology

            asyncio.run(
                topology.run(
                    config,
                    config_file=args.config,
                    redis_url=args.redis,
                    replicas=args.replicas or DEFAULT_REPLICAS,
                    ephemeral_ports=args.ephemeral_ports,
                    ready_file=args.ready_file,
                    only=only,
                    log_file=log_file,
                )
            )
        else:
            asyncio.run(
                supervisor.run(
                    config,
                    ephemeral_ports=args.ephemeral_ports,
                    ready_file=args.ready_file,
                    only=only,
                    log_file=log_file,
                )
            )
    except (supervisor.StartupError, StoreError, RedisServerError) as exc:
        print(f"marquee up: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a port taken by another process (another `marquee up`?)
        print(f"marquee up: {exc.strerror or exc} (is another marquee up running on these ports?)", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.stop()
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    """One service, as a container runs it: every log line to stderr (JSON by default), ports from the
    configuration (each service's default when 0), the services it calls at ``[addresses]``."""
    from services.common.store.port import StoreError
    from services.platform import supervisor

    names = [p.name for p in discover()]
    if args.name not in names:
        print(f"marquee serve: there is no service {args.name!r} (services: {', '.join(names)})", file=sys.stderr)
        return 2
    config = _with_store(platform_config(args), args.store, args.cql)
    configure_logging(config.logging.level, config.logging.format)
    try:
        asyncio.run(supervisor.run(config, ready_file=args.ready_file, only={args.name}))
    except (supervisor.StartupError, StoreError) as exc:
        print(f"marquee serve {args.name}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"marquee serve {args.name}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


# Top-level packages whose ``cli`` module adds commands too.
TOP_LEVEL_CLIS = ("ml",)


def _service_cli_modules() -> list[Any]:
    modules = []
    names = [f"services.{i.name}.cli" for i in pkgutil.iter_modules(services.__path__) if i.ispkg]
    for name in [*names, *(f"{top}.cli" for top in TOP_LEVEL_CLIS)]:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marquee", description="Marquee video streaming platform")
    parser.add_argument("--config", type=Path, default=None, help="TOML config file (default: $MARQUEE_CONFIG)")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (default: ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the all-in-one platform with demo content")
    up.add_argument("--ephemeral-ports", action="store_true", help="bind every service to a free port")
    up.add_argument("--ready-file", type=Path, default=None, help="write the endpoints here as JSON when up")
    up.add_argument("--only", nargs="*", default=None, help="start only these services")
    up.add_argument(
        "--verbose",
        action="store_true",
        help="stream every log line to the terminal too (default: only progress, warnings and errors)",
    )
    up.add_argument(
        "--log-format",
        choices=("json", "text"),
        default=None,
        help="stream every log line to the terminal in this format",
    )
    up.add_argument("--store", choices=("sqlite", "cql"), default=None, help="override [store] kind")
    up.add_argument(
        "--cql",
        default=None,
        metavar="HOST:PORT[,...]",
        help="run on this CQL cluster (implies --store cql); 'local' starts a Cassandra node in the data directory",
    )
    up.add_argument(
        "--distributed",
        action="store_true",
        help="the Helm chart's topology on this machine: Redis, CQL, every service as its own replica processes",
    )
    up.add_argument(
        "--replicas",
        type=int,
        default=None,
        metavar="N",
        help=f"with --distributed: processes per gRPC service (default {DEFAULT_REPLICAS})",
    )
    up.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="with --distributed: this Redis server (default: one of our own under the data directory, with AOF)",
    )
    up.set_defaults(func=_cmd_up)
    serve = sub.add_parser(
        "serve",
        help="run one service in this process (what a container runs); the services it calls are at [addresses]",
    )
    serve.add_argument("name", help="the service: " + ", ".join(p.name for p in discover()))
    serve.add_argument("--ready-file", type=Path, default=None, help="write the endpoints here as JSON when up")
    serve.add_argument("--store", choices=("sqlite", "cql"), default=None, help="override [store] kind")
    serve.add_argument("--cql", default=None, metavar="HOST:PORT[,...]", help="the CQL cluster's contact points")
    serve.set_defaults(func=_cmd_serve)
    from services.platform import storage  # migrate, copy (imports this module: registered once it is loaded)

    storage.register(sub)
    for module in _service_cli_modules():
        register = getattr(module, "register", None)
        if register is not None and module.__name__ != __name__:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"marquee: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
