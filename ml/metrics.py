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
