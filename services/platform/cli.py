"""The `marquee` command.

    marquee up [--config FILE] [--data-dir DIR] [--ephemeral-ports] [--only NAME ...]
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
from services.common.config import ConfigError, PlatformConfig, load_config
from services.common.logs import configure_logging


def platform_config(args: argparse.Namespace) -> PlatformConfig:
    """The platform config from --config / $MARQUEE_CONFIG, the environment, and --data-dir."""
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return load_config(args.config, **overrides)


def _cmd_up(args: argparse.Namespace) -> int:
    from services.platform import supervisor

    config = platform_config(args)
    configure_logging(config.logging.level, config.logging.format)
    try:
        asyncio.run(
            supervisor.run(
                config,
                ephemeral_ports=args.ephemeral_ports,
                ready_file=args.ready_file,
                only=set(args.only) if args.only else None,
            )
        )
    except supervisor.StartupError as exc:
        print(f"marquee up: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a port taken by another process (another `marquee up`?)
        print(f"marquee up: {exc.strerror or exc} (is another marquee up running on these ports?)", file=sys.stderr)
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
    up.set_defaults(func=_cmd_up)
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
