"""Ranking metrics at k with binary relevance, averaged over users."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    ndcg: float


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` highest scores' columns, best first, ties to the lower column: exactly
    ``np.argsort(-scores, axis=1, kind="stable")[:, :k]``, without sorting whole rows. A partial partition finds each
    row's ``k`` best, which are then sorted; a row with more than ``k`` scores at or above its ``k``-th (a tie across
    the cut, where the partition's pick is arbitrary) or with a NaN among them is fully sorted instead."""
    neg = -np.asarray(scores)
    if k >= neg.shape[1]:
        return np.argsort(neg, axis=1, kind="stable")[:, :k]
    picked = np.sort(np.argpartition(neg, k - 1, axis=1)[:, :k], axis=1)
    values = np.take_along_axis(neg, picked, axis=1)
    top = np.take_along_axis(picked, np.argsort(values, axis=1, kind="stable"), axis=1)
    kth = values.max(axis=1)
    whole = np.isnan(kth) | ((neg <= kth[:, None]).sum(axis=1) > k)
    if whole.any():
        top[whole] = np.argsort(neg[whole], axis=1, kind="stable")[:, :k]
    return top


def scores_at_k(top: np.ndarray, relevant: Sequence[set[int]], k: int) -> Scores:
    """``top``: item indices per user, best first; ``relevant``: each user's held-out items (non-empty)."""
    discounts = _discounts(k)
    p = r = n = 0.0
    for row, rel in zip(top, relevant, strict=True):
        hits = np.array([1.0 if int(i) in rel else 0.0 for i in row[:k]])
        p += hits.sum() / k
        r += hits.sum() / len(rel)
        n += float((hits * discounts[: len(hits)]).sum() / discounts[: min(k, len(rel))].sum())
    count = max(len(relevant), 1)
    return Scores(p / count, r / count, n / count)


def ndcg_at_k(top: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    return scores_at_k(top, relevant, k).ndcg
