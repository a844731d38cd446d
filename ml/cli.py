"""``marquee eval``: the offline evaluation table on MovieLens-100k."""

from __future__ import annotations

import argparse
from typing import Any

from ml.evaluation import format_table, table
from services.common import movielens


def _cmd(args: argparse.Namespace) -> int:
    print(f"MovieLens-100k, per-user temporal split (last 20% held out), top {args.k}")
    print(format_table(table(movielens.load(), args.k), args.k))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate the recommendation models on MovieLens-100k")
    p.add_argument("--k", type=int, default=10)
    p.set_defaults(func=_cmd)
