"""``marquee eval``: the offline evaluation table on MovieLens-100k."""

from __future__ import annotations

import argparse
from typing import Any

from ml.evaluation import DEFAULT_SEED, describe, format_table, table
from services.common import movielens


def _cmd(args: argparse.Namespace) -> int:
    print(f"MovieLens-100k, per-user temporal split (last 20% held out), top {args.k}, seed {args.seed}")
    rows, trained = table(movielens.load(), args.k, args.seed)
    print(format_table(rows, args.k))
    print(describe(trained))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate the recommendation models on MovieLens-100k")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.set_defaults(func=_cmd)
