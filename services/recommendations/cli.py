"""``marquee train``: one training run on the platform's store (precomputed lists and the serving model); the
running service picks the new model up within seconds."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from services.platform.cli import platform_config
from services.platform.runtime import platform_store
from services.recommendations.config import RecommendationsConfig
from services.recommendations.training import train


def _cmd(args: argparse.Namespace) -> int:
    platform = platform_config(args)
    config = platform.service("recommendations", RecommendationsConfig).training
    if args.seed is not None:
        config = config.model_copy(update={"seed": args.seed})

    async def go() -> int:
        store = platform_store(platform)
        try:
            outcome = await train(store, config)
        finally:
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
    p.set_defaults(func=_cmd)
