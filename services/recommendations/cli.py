"""``marquee train``: one training run on the platform's store (precomputed lists and the serving model) and the
titles of the running catalog (CatalogService at ``--catalog``, ``addresses.catalog`` or the catalog's default
port on this machine, called with a service token minted from the platform's auth key); the running service picks
the new model up within seconds."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import grpc

from services.common.auth import AccessTokens
from services.platform.cli import platform_config
from services.platform.runtime import local_config, platform_store
from services.recommendations.config import RecommendationsConfig
from services.recommendations.titles import CatalogTitles
from services.recommendations.training import train

DEFAULT_CATALOG = "127.0.0.1:50052"  # where `marquee up` runs the catalog by default


def _cmd(args: argparse.Namespace) -> int:
    platform = platform_config(args)
    config = platform.service("recommendations", RecommendationsConfig).training
    if args.seed is not None:
        config = config.model_copy(update={"seed": args.seed})

    address = args.catalog or platform.addresses.get("catalog") or DEFAULT_CATALOG

    async def go() -> int:
        store = platform_store(platform)
        # a catalog that is not running is reported at once
        titles = CatalogTitles.connect(address, AccessTokens(local_config(platform).auth), wait=False)
        try:
            outcome = await train(store, titles, config)
        except grpc.aio.AioRpcError as err:
            hint = " (is `marquee up` running?)" if err.code() == grpc.StatusCode.UNAVAILABLE else ""
            print(f"marquee train: the catalog at {address}: {err.details()}{hint}", file=sys.stderr)
            return 1
        finally:
            await titles.close()
            await store.close()
        if outcome is None:
            print("nothing to train on yet: the catalog has no titles or nobody has watched or rated anything")
            return 1
        print(json.dumps({**outcome.summary, "seconds": round(outcome.seconds, 1)}, indent=2))
        return 0

    return asyncio.run(go())


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train the recommender and precompute every profile's list")
    p.add_argument("--seed", type=int, default=None, help="override training.seed")
    p.add_argument("--catalog", default="", help="CatalogService address (default: addresses.catalog, else "
                   f"{DEFAULT_CATALOG})")  # fmt: skip
    p.set_defaults(func=_cmd)
