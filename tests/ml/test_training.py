"""Training is reproducible from a seed, and a stop request ends it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ml.data import Dataset, matrix, movielens_dataset
from ml.models import Cancelled, LightFMParams, lightfm, lightfm_snapshots
from ml.train import fit
from services.common.movielens import load


@pytest.fixture(scope="module")
def small() -> Dataset:
    """A third of MovieLens' users: enough to train on, quick to train."""
    data = movielens_dataset(load())
    return data.with_events(e for e in data.events if int(e.user.split("-")[1]) % 3 == 0)


def test_the_same_seed_gives_the_same_model_and_lists(small: Dataset) -> None:
    profiles = small.users()[:50]
    a = fit(small, profiles, seed=11, list_size=30, epochs=(5,))
    b = fit(small, profiles, seed=11, list_size=30, epochs=(5,))
    c = fit(small, profiles, seed=12, list_size=30, epochs=(5,))
    assert a.artifact.to_bytes() == b.artifact.to_bytes()
    assert a.lists == b.lists and len(a.lists) == 50
    assert a.summary == b.summary
    assert not np.array_equal(a.artifact.embeddings, c.artifact.embeddings), "the seed matters"
    for profile, picks in a.lists.items():
        seen = {e.item for e in small.events if e.user == profile}
        assert len(picks) == 30 and not seen & {p.title_id for p in picks}


def test_a_stop_request_cancels_training(small: Dataset) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        fit(small, [], seed=1, list_size=10, epochs=(5,), stop=stop)


def test_a_snapshot_of_a_longer_run_is_the_shorter_runs_model(small: Dataset) -> None:
    train = matrix(small)
    snapshots = lightfm_snapshots(small, train, LightFMParams(), 5, (1, 2))
    alone = lightfm(small, train, LightFMParams(epochs=1), 5)
    assert np.array_equal(snapshots[1].rows, alone.rows)
    assert np.array_equal(snapshots[1].user_embeddings, alone.user_embeddings)
    assert np.array_equal(snapshots[1].feature_vectors, alone.feature_vectors)
    assert not np.array_equal(snapshots[2].rows, alone.rows), "the second epoch trained on"
