"""Similarity top-k: marquee's Rust fused scorer vs numpy (BLAS matmul + argpartition + sort of the k), on the
same 100k x 64 float32 item matrix, for a single query and for batches of 256 queries, in one run; both use
every core (numpy through its BLAS, marquee through its own threads). Target: at least 1.0x.
Run: ./dev bench topk
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from marquee.native import SimilarityIndex


def numpy_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ items.T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(3)
    items = rng.standard_normal((args.items, args.dim), dtype=np.float32)
    index = SimilarityIndex(items)
    print(f"{args.items:,} items x {args.dim} float32, k={args.k}; numpy {np.__version__}")
    print(f"{'case':<18} {'numpy ms':>10} {'marquee ms':>11} {'ratio':>7}")
    worst = float("inf")
    for batch, repeats in ((1, 50), (256, 7)):
        queries = rng.standard_normal((batch, args.dim), dtype=np.float32)
        ours_ids, _ = index.top_k(queries, args.k)
        theirs = numpy_top_k(items, queries, args.k)
        assert (ours_ids == theirs).mean() > 0.99, "both find the same items"
        t_np = timed(partial(numpy_top_k, items, queries, args.k), repeats)
        t_us = timed(partial(index.top_k, queries, args.k), repeats)
        worst = min(worst, t_np / t_us)
        print(f"{f'batch of {batch}':<18} {t_np * 1e3:>10.2f} {t_us * 1e3:>11.2f} {t_np / t_us:>6.2f}x")
    print(f"lowest ratio: {worst:.2f}x (target >= 1.0x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
