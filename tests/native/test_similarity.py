"""SimilarityIndex: the same answers as numpy, exclusions, cosine, padding, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from marquee.native import InvalidArgumentError, SimilarityIndex


def reference(items: np.ndarray, queries: np.ndarray, k: int, banned: list[set[int]]) -> list[list[int]]:
    scores = queries @ items.T
    out = []
    for q, row in enumerate(scores):
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))
        out.append([i for i in order if i not in banned[q]][:k])
    return out


def test_matches_numpy_with_exclusions_on_any_thread_count() -> None:
    rng = np.random.default_rng(1)
    items = rng.standard_normal((3000, 24), dtype=np.float32)
    queries = rng.standard_normal((5, 24), dtype=np.float32)
    index = SimilarityIndex(items)
    assert (len(index), index.dim) == (3000, 24)
    exclude = [[int(i) for i in rng.choice(3000, 50, replace=False)] for _ in range(5)]
    allowed = np.ones(3000, dtype=bool)
    allowed[::7] = False  # e.g. above the profile's maturity
    banned = [set(e) | set(range(0, 3000, 7)) for e in exclude]
    want = reference(items, queries, 10, banned)
    for threads in (1, 2, 5):
        ids, scores = index.top_k(queries, 10, allowed=allowed, exclude=exclude, threads=threads)
        assert ids.tolist() == want
        assert np.all(np.diff(scores, axis=1) <= 0), "best first"


def test_cosine_padding_and_bad_input() -> None:
    items = np.array([[3.0, 0.0], [0.0, 0.5], [1.0, 1.0]], dtype=np.float32)
    index = SimilarityIndex(items, metric="cosine")
    ids, scores = index.top_k(np.array([[0.0, 2.0]], dtype=np.float32), 5)
    assert ids.tolist() == [[1, 2, 0, -1, -1]], "cosine ignores lengths; missing places are -1"
    assert scores[0, 0] == pytest.approx(1.0) and np.isneginf(scores[0, 3])
    with pytest.raises(InvalidArgumentError):
        index.top_k(np.zeros((1, 3), dtype=np.float32), 2)
    with pytest.raises(InvalidArgumentError):
        index.top_k(np.array([[np.nan, 1.0]], dtype=np.float32), 2)
    with pytest.raises(InvalidArgumentError):
        index.top_k(np.ones((1, 2), dtype=np.float32), 0)
    with pytest.raises(InvalidArgumentError):
        index.top_k(np.ones((1, 2), dtype=np.float32), 2, allowed=np.ones(2, dtype=bool))
    with pytest.raises(InvalidArgumentError):
        SimilarityIndex(items, metric="euclid")
