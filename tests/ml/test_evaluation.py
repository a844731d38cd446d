"""The offline evaluation: the temporal split, the metrics on hand-checked cases, and the baselines on MovieLens."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ml.evaluation import Split, evaluate, table, temporal_split
from services.common.movielens import MovieLens, load


@pytest.fixture(scope="module")
def movielens() -> MovieLens:
    return load()


def test_temporal_split_holds_out_each_users_latest_fifth(movielens: MovieLens) -> None:
    split = temporal_split(movielens)
    assert (split.users, split.items) == (943, 1682)
    held = sum(len(t) for t in split.test)
    assert 0.19 * 100_000 <= held <= 0.23 * 100_000
    for u, items in enumerate(split.test):
        assert not any(split.train[u, i] for i in items), "no held-out item is in training"


def test_metrics_on_a_hand_checked_case() -> None:
    train = np.zeros((2, 6), dtype=np.float32)
    split = Split(train, [{0, 1}, {5}], 6)

    def recommend(users: np.ndarray) -> np.ndarray:
        picks: np.ndarray = np.array([[0, 2, 1], [3, 4, 2]])[users]
        return picks

    s = evaluate(recommend, split, k=3)
    # user 0: hits at ranks 1 and 3 of 2 relevant; user 1: none
    assert s.precision == pytest.approx((2 / 3 + 0) / 2)
    assert s.recall == pytest.approx((1.0 + 0) / 2)
    dcg = 1 + 1 / np.log2(4)
    ideal = 1 + 1 / np.log2(3)
    assert s.ndcg == pytest.approx((dcg / ideal + 0) / 2)


def test_baselines_rank_as_expected_and_the_command_prints_the_table(movielens: MovieLens) -> None:
    scores = dict(table(movielens))
    assert scores["EASE"].ndcg > scores["ItemKNN"].ndcg > scores["popularity"].ndcg > 0.05
    out = subprocess.run(
        [sys.executable, "-m", "services.platform.cli", "eval"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "NDCG@10" in out.stdout and "EASE" in out.stdout
