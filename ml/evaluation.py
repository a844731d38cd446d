"""Offline evaluation on MovieLens-100k with a per-user temporal split: each user's last 20% of interactions (by
time) are held out; models see the rest. Metrics at k over users with held-out items, recommending only items
the user has not interacted with in training: precision@k, recall@k, NDCG@k (binary relevance).

Every model ranks through the Rust kernel (``marquee.native.SimilarityIndex``) with the user's training items
excluded. The hybrid's weights and LightFM's epochs are chosen on a validation split cut from the training data
only, never on the held-out fifth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from marquee.native import SimilarityIndex
from ml import models
from ml.blend import Trained, queries_of, train_hybrid, user_regions
from ml.data import Dataset, Split, movielens_dataset, temporal_split
from ml.metrics import Scores, scores_at_k
from ml.models import Linear
from services.common.movielens import MovieLens

DEFAULT_SEED = 42


def top_k(model: Linear, split: Split, users: np.ndarray, k: int) -> np.ndarray:
    q = queries_of(split.train, user_regions(split))
    queries = model.queries(q)[users]
    ids, _ = SimilarityIndex(model.rows).top_k(
        np.ascontiguousarray(queries, dtype=np.float32), k, exclude=[split.train.seen[u] for u in users]
    )
    return ids


def evaluate(model: Linear, split: Split, k: int = 10) -> Scores:
    users = np.array([u for u, t in enumerate(split.test) if t])
    return scores_at_k(top_k(model, split, users, k), [split.test[u] for u in users], k)


Builder = Callable[[Dataset, Split, int], Linear]

BASELINES: dict[str, Builder] = {
    "popularity": lambda data, split, seed: models.popularity(split.train),
    "ItemKNN": lambda data, split, seed: models.itemknn(split.train),
    "EASE": lambda data, split, seed: models.ease(split.train),
    "LightFM": lambda data, split, seed: models.lightfm(data, split.train, models.LightFMParams(), seed),
}


def table(data: MovieLens, k: int = 10, seed: int = DEFAULT_SEED) -> tuple[list[tuple[str, Scores]], Trained]:
    dataset = movielens_dataset(data)
    split = temporal_split(dataset)
    rows = [(name, evaluate(build(dataset, split, seed), split, k)) for name, build in BASELINES.items()]
    trained = train_hybrid(dataset, split, seed)
    rows.append(("hybrid", evaluate(trained.hybrid, split, k)))
    return rows, trained


def format_table(rows: list[tuple[str, Scores]], k: int = 10) -> str:
    lines = [f"{'model':<12} {f'precision@{k}':>13} {f'recall@{k}':>10} {f'NDCG@{k}':>8}"]
    lines += [f"{name:<12} {s.precision:>13.4f} {s.recall:>10.4f} {s.ndcg:>8.4f}" for name, s in rows]
    return "\n".join(lines)


def describe(trained: Trained) -> str:
    weights = ", ".join(f"{p.name} {w:g}" for p, w in zip(trained.hybrid.parts, trained.hybrid.weights, strict=True))
    return (
        f"hybrid = {weights} (each model's scores over their standard deviation); LightFM {trained.epochs} epochs; "
        f"validation NDCG@10 {trained.validation_ndcg:.4f}"
    )
