"""Offline evaluation on MovieLens-100k with a per-user temporal split: each user's last 20% of interactions (by
time) are held out; models see the rest. Metrics at k over users with held-out items, recommending only items
the user has not interacted with in training: precision@k, recall@k, NDCG@k (binary relevance).

Models here are the baselines: popularity, ItemKNN (cosine item-item) and EASE (Steck, 2019). Top-k selection
runs in Rust (``marquee.native.SimilarityIndex``) with each user's training items excluded."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from marquee.native import SimilarityIndex
from services.common.movielens import MovieLens

TEST_SHARE = 0.2


@dataclass(frozen=True)
class Split:
    """Implicit interactions as a dense users x items matrix (train) and the held-out items per user."""

    train: np.ndarray  # float32 0/1, users x items
    test: list[set[int]]  # item indices per user
    items: int

    @property
    def users(self) -> int:
        return int(self.train.shape[0])


def temporal_split(data: MovieLens, test_share: float = TEST_SHARE) -> Split:
    users = sorted({r.user_id for r in data.ratings})
    items = sorted({m.item_id for m in data.movies})
    u_index = {u: i for i, u in enumerate(users)}
    i_index = {it: i for i, it in enumerate(items)}
    by_user: dict[int, list[tuple[int, int]]] = {}
    for r in data.ratings:
        by_user.setdefault(u_index[r.user_id], []).append((r.timestamp, i_index[r.item_id]))
    train = np.zeros((len(users), len(items)), dtype=np.float32)
    test: list[set[int]] = [set() for _ in users]
    for u, events in by_user.items():
        events.sort()
        cut = len(events) - max(1, math.ceil(len(events) * test_share))
        for _, i in events[:cut]:
            train[u, i] = 1.0
        test[u] = {i for _, i in events[cut:]} - {i for _, i in events[:cut]}
    return Split(train, test, len(items))


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    ndcg: float


def evaluate(recommend: Callable[[np.ndarray], np.ndarray], split: Split, k: int = 10) -> Scores:
    """``recommend(user_indices)`` returns item indices (users x k), best first, none of them training items."""
    users = np.array([u for u in range(split.users) if split.test[u]])
    top = recommend(users)
    p = r = n = 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for row, u in zip(top, users, strict=True):
        relevant = split.test[u]
        hits = np.array([1.0 if int(i) in relevant else 0.0 for i in row[:k]])
        p += hits.sum() / k
        r += hits.sum() / len(relevant)
        ideal = discounts[: min(k, len(relevant))].sum()
        n += float((hits * discounts[: len(hits)]).sum() / ideal)
    count = len(users)
    return Scores(p / count, r / count, n / count)


def _exclusions(split: Split, users: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(split.train[u]).tolist() for u in users]


def popularity(split: Split, k: int) -> Callable[[np.ndarray], np.ndarray]:
    counts = split.train.sum(axis=0, dtype=np.float32)
    index = SimilarityIndex(counts.reshape(-1, 1))

    def recommend(users: np.ndarray) -> np.ndarray:
        queries = np.ones((len(users), 1), dtype=np.float32)
        ids, _ = index.top_k(queries, k, exclude=_exclusions(split, users))
        return ids

    return recommend


def item_scorer(split: Split, similarity: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    """Scores = train row x similarity (item-item); the similarity's columns are the items to rank."""
    index = SimilarityIndex(np.ascontiguousarray(similarity.T, dtype=np.float32))

    def recommend(users: np.ndarray) -> np.ndarray:
        ids, _ = index.top_k(np.ascontiguousarray(split.train[users]), k, exclude=_exclusions(split, users))
        return ids

    return recommend


def itemknn(split: Split, k: int, neighbours: int = 100) -> Callable[[np.ndarray], np.ndarray]:
    x = split.train
    norms = np.sqrt(x.sum(axis=0)) + 1e-9
    sim = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    # keep each item's strongest neighbours only
    cutoff = -np.sort(-sim, axis=0)[min(neighbours, sim.shape[0] - 1)]
    sim = np.where(sim >= cutoff, sim, 0.0).astype(np.float32)
    return item_scorer(split, sim, k)


def ease(split: Split, k: int, reg: float = 500.0) -> Callable[[np.ndarray], np.ndarray]:
    g = (split.train.T @ split.train).astype(np.float64)
    g[np.diag_indices_from(g)] += reg
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return item_scorer(split, b.astype(np.float32), k)


MODELS: dict[str, Callable[[Split, int], Callable[[np.ndarray], np.ndarray]]] = {
    "popularity": popularity,
    "ItemKNN": itemknn,
    "EASE": ease,
}


def table(data: MovieLens, k: int = 10) -> list[tuple[str, Scores]]:
    split = temporal_split(data)
    return [(name, evaluate(make(split, k), split, k)) for name, make in MODELS.items()]


def format_table(rows: list[tuple[str, Scores]], k: int = 10) -> str:
    lines = [f"{'model':<12} {f'precision@{k}':>13} {f'recall@{k}':>10} {f'NDCG@{k}':>8}"]
    lines += [f"{name:<12} {s.precision:>13.4f} {s.recall:>10.4f} {s.ndcg:>8.4f}" for name, s in rows]
    return "\n".join(lines)
