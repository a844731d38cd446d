"""Edge cache byte hit ratio: marquee's S3-FIFO (and its LRU) vs libCacheSim's LRU, S3-FIFO and W-TinyLFU on the
same synthetic segment trace at the same cache sizes, in one run.

The trace models a video service's edge: titles with Zipf popularity; sessions that pick a rendition (bigger
segments for higher rungs), mostly start at the beginning (some resume part way), and watch a geometrically
distributed number of 4 s segments (viewers drop off); sessions arrive as a Poisson process and interleave.
Object sizes are the segment sizes in KiB (libCacheSim's W-TinyLFU sizes its sketch from a 32-bit count,
which byte-sized multi-GB caches overflow), so the ratios are byte hit ratios.
Target: marquee's S3-FIFO at least the best of libCacheSim's three.
Run: ./dev bench edge_hit_ratio
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import libcachesim as lcs
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from marquee.native import replay_policy

# (share of sessions, bytes per 4 s segment): 1080p, 720p, 480p, 360p
RUNGS = ((0.40, 2_500_000), (0.30, 1_500_000), (0.20, 600_000), (0.10, 350_000))


def make_trace(
    *, titles: int, sessions: int, alpha: float, mean_watch: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(object ids, sizes) per request, in time order."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, titles + 1)
    popularity = ranks**-alpha
    popularity /= popularity.sum()
    lengths = rng.integers(300, 1800, size=titles)  # 20 minutes to 2 hours of 4 s segments
    title = rng.choice(titles, size=sessions, p=popularity)
    rung = rng.choice(len(RUNGS), size=sessions, p=[r[0] for r in RUNGS])
    resume = rng.random(sessions) < 0.2
    start = np.where(resume, (rng.random(sessions) * lengths[title] * 0.8).astype(np.int64), 0)
    watched = np.minimum(rng.geometric(1 / mean_watch, size=sessions), lengths[title] - start)
    arrival = np.cumsum(rng.exponential(1.0, size=sessions))
    counts = watched.astype(np.int64)
    owner = np.repeat(np.arange(sessions), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    times = arrival[owner] + offset * 4.0
    order = np.argsort(times, kind="stable")
    owner, offset = owner[order], offset[order]
    segment = start[owner] + offset
    ids = (title[owner].astype(np.int64) * 8 + rung[owner]) * 4096 + segment
    # sizes vary around the rung's mean (scene complexity), fixed per object
    jitter = 0.6 + 0.8 * ((ids * 2654435761) % 1000) / 1000
    sizes = (np.array([r[1] for r in RUNGS])[rung[owner]] * jitter / 1024).astype(np.int64)
    return ids.astype(np.uint64), sizes.astype(np.uint64)


def libcachesim_ratio(cache: lcs.CacheBase, ids: np.ndarray, sizes: np.ndarray) -> float:
    hit_bytes = 0
    req = lcs.Request()
    for obj, size in zip(ids.tolist(), sizes.tolist(), strict=True):
        req.obj_id, req.obj_size = obj, size
        if cache.get(req):
            hit_bytes += size
    return hit_bytes / int(sizes.sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--titles", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=6000)
    parser.add_argument("--alpha", type=float, default=0.9, help="Zipf exponent of title popularity")
    parser.add_argument("--mean-watch", type=float, default=120.0, help="mean segments watched per session")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ids, sizes = make_trace(
        titles=args.titles, sessions=args.sessions, alpha=args.alpha, mean_watch=args.mean_watch, seed=args.seed
    )
    unique, first = np.unique(ids, return_index=True)
    footprint = int(sizes[first].sum())
    print(
        f"trace: {len(ids):,} requests, {len(unique):,} objects, {footprint / 1e6:.1f} GB footprint, "
        f"{int(sizes.sum()) / 1e6:.1f} GB requested; Zipf alpha {args.alpha}, seed {args.seed}"
    )
    id_list, size_list = ids.tolist(), sizes.tolist()
    total = int(sizes.sum())
    print(f"{'cache size':>12} {'policy':<28} {'byte hit ratio':>15} {'seconds':>8}")
    worst = float("inf")
    for share in (0.01, 0.05, 0.10):
        capacity = int(footprint * share)
        rows: dict[str, float] = {}
        for label, make in [
            ("libCacheSim LRU", lcs.LRU),
            ("libCacheSim S3-FIFO", lcs.S3FIFO),
            ("libCacheSim W-TinyLFU", lcs.WTinyLFU),
        ]:
            t = time.perf_counter()
            rows[label] = libcachesim_ratio(make(capacity), ids, sizes)
            print(f"{share:>11.0%} {label:<28} {rows[label]:>15.4f} {time.perf_counter() - t:>8.1f}")
        for label, policy in [("marquee LRU", "lru"), ("marquee S3-FIFO", "s3fifo")]:
            t = time.perf_counter()
            _, _, _, hit_bytes = replay_policy(policy, capacity, id_list, size_list)
            rows[label] = hit_bytes / total
            print(f"{share:>11.0%} {label:<28} {rows[label]:>15.4f} {time.perf_counter() - t:>8.1f}")
        best = max(v for k, v in rows.items() if k.startswith("libCacheSim"))
        ratio = rows["marquee S3-FIFO"] / best if best else float("inf")
        worst = min(worst, ratio)
        print(
            f"{share:>11.0%} marquee S3-FIFO / best of libCacheSim: {ratio:.3f}x; "
            f"vs marquee LRU: {rows['marquee S3-FIFO'] / max(rows['marquee LRU'], 1e-9):.3f}x"
        )
    print(f"lowest ratio over the sizes: {worst:.3f}x (target >= 1.0x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
