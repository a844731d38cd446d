"""The offline evaluation: the temporal split, the metrics on hand-checked cases, and the table `marquee eval`
prints, where the hybrid must lead every baseline on NDCG@10."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from ml.data import movielens_dataset, temporal_split
from ml.metrics import scores_at_k, top_k
from services.common.movielens import MovieLens, load


@pytest.fixture(scope="module")
def movielens() -> MovieLens:
    return load()


def test_temporal_split_holds_out_each_users_latest_fifth(movielens: MovieLens) -> None:
    split = temporal_split(movielens_dataset(movielens))
    assert split.train.positives.shape == (943, 1682)
    held = sum(len(t) for t in split.test)
    assert 0.19 * 100_000 <= held <= 0.23 * 100_000
    for u, items in enumerate(split.test):
        assert not any(split.train.positives[u, i] for i in items), "no held-out item is in training"
    assert len(split.train_events) + held == 100_000


def test_metrics_on_a_hand_checked_case() -> None:
    top = np.array([[0, 2, 1], [3, 4, 2]])
    s = scores_at_k(top, [{0, 1}, {5}], k=3)
    # user 0: hits at ranks 1 and 3 of 2 relevant; user 1: none
    assert s.precision == pytest.approx((2 / 3 + 0) / 2)
    assert s.recall == pytest.approx((1.0 + 0) / 2)
    dcg = 1 + 1 / np.log2(4)
    ideal = 1 + 1 / np.log2(3)
    assert s.ndcg == pytest.approx((dcg / ideal + 0) / 2)


@pytest.mark.slow
def test_the_hybrid_leads_every_baseline_in_the_printed_table() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "services.platform.cli", "eval"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    ndcg = {}
    for line in out.stdout.splitlines():
        match = re.match(r"^(popularity|ItemKNN|EASE|LightFM|hybrid)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line)
        if match:
            ndcg[match[1]] = float(match[4])
    assert set(ndcg) == {"popularity", "ItemKNN", "EASE", "LightFM", "hybrid"}, out.stdout
    assert ndcg["hybrid"] > max(v for k, v in ndcg.items() if k != "hybrid"), out.stdout
    assert ndcg["EASE"] > ndcg["ItemKNN"] > ndcg["popularity"] > 0.05


def test_top_k_is_the_stable_sorts_first_k_ties_and_all() -> None:
    rng = np.random.default_rng(3)
    for trial in range(200):
        rows, columns, k = int(rng.integers(1, 30)), int(rng.integers(1, 50)), int(rng.integers(1, 12))
        # small integers tie often, also across the k-th place; -inf as masked scores; NaNs sort last
        scores = rng.integers(0, 4, (rows, columns)).astype(np.float32)
        if trial % 2:
            scores = rng.standard_normal((rows, columns)).astype(np.float32)
        scores[rng.random((rows, columns)) < 0.1] = -np.inf
        if trial % 5 == 0:
            scores[rng.random((rows, columns)) < 0.1] = np.nan
        assert np.array_equal(top_k(scores, k), np.argsort(-scores, axis=1, kind="stable")[:, :k]), trial
