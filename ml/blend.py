"""The hybrid: a weighted sum of the candidate models' scores, weights fitted on a validation split.

Each model's scores are divided by their standard deviation (measured on the training users) so the weights are
comparable; the hybrid is itself linear (rows and queries concatenated, each model's rows scaled by its weight),
so it ranks through the same Rust kernel as every model. Weights are fitted by coordinate ascent on NDCG@10 of
a validation split cut from the training data (each user's latest 20% of their training events), then every
model is refitted on all the training data with the fitted weights and the validated LightFM epochs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml import models
from ml.data import Dataset, Matrix, Split, temporal_split
from ml.metrics import ndcg_at_k, top_k
from ml.models import Linear, Queries

GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
LIGHTFM_EPOCHS = (10, 20, 30)


@dataclass(frozen=True)
class Hybrid(Linear):
    parts: tuple[Linear, ...] = ()
    weights: tuple[float, ...] = ()

    def queries(self, q: Queries) -> np.ndarray:
        return np.ascontiguousarray(np.hstack([p.queries(q) for p in self.parts]), dtype=np.float32)


def combine(parts: Sequence[Linear], weights: Sequence[float], scales: Sequence[float]) -> Hybrid:
    rows = np.hstack([p.rows * np.float32(w / s) for p, w, s in zip(parts, weights, scales, strict=True)])
    return Hybrid("hybrid", np.ascontiguousarray(rows, dtype=np.float32), tuple(parts), tuple(weights))


def queries_of(train: Matrix, regions: Sequence[str]) -> Queries:
    return Queries(train.positives, np.arange(len(train.users)), regions)


def scale_of(model: Linear, q: Queries, sample: int = 256) -> float:
    take = slice(0, min(sample, len(q.users)))
    part = Queries(q.positives[take], q.users[take], q.regions[take])
    return float(np.std(model.scores(part))) or 1.0


@dataclass(frozen=True)
class Fitted:
    parts: tuple[Linear, ...]
    scales: tuple[float, ...]


def fit_parts(data: Dataset, split: Split, epochs: int, seed: int, stop: threading.Event | None = None) -> Fitted:
    factors = models.lightfm(data, split.train, models.LightFMParams(epochs=epochs), seed, stop)
    models.check(stop)
    others = fit_others(data, split)
    q = queries_of(split.train, user_regions(split))
    return Fitted((factors, *others.parts), (scale_of(factors, q), *others.scales))


def fit_others(data: Dataset, split: Split) -> Fitted:
    """Every part but LightFM (none of them depends on LightFM's epochs), with their scales."""
    train = split.train
    parts: tuple[Linear, ...] = (
        models.ease(train),
        models.itemknn(train),
        models.popularity(train),
        models.trending(data, split.train_events),
    )
    q = queries_of(train, user_regions(split))
    return Fitted(parts, tuple(scale_of(p, q) for p in parts))


def user_regions(split: Split) -> list[str]:
    """Each user's region: the region of their latest training event that has one."""
    latest: dict[str, tuple[int, str]] = {}
    for e in split.train_events:
        if e.region and e.time >= latest.get(e.user, (-1, ""))[0]:
            latest[e.user] = (e.time, e.region)
    return [latest.get(u, (0, ""))[1] for u in split.train.users]


def masked_scores(model: Linear, split: Split) -> np.ndarray:
    """Normalised scores of every training user for every item, their seen items at -inf."""
    s = model.scores(queries_of(split.train, user_regions(split)))
    for u, seen in enumerate(split.train.seen):
        s[u, seen] = -np.inf
    return s


def fit_weights(scores: Sequence[np.ndarray], split: Split, passes: int = 2) -> tuple[float, ...]:
    """The first model's weight stays 1; the next two (the strongest, item-item models) are searched together
    over :data:`GRID` x :data:`GRID`, which coordinate ascent alone can miss; then coordinate ascent over every
    other weight."""
    users = np.array([u for u, t in enumerate(split.test) if t])
    parts = [s[users] for s in scores]
    weights = [1.0] + [0.0] * (len(parts) - 1)

    def value(ws: Sequence[float]) -> float:
        total = sum((w * p for w, p in zip(ws, parts, strict=True) if w), np.zeros_like(parts[0]))
        top = top_k(total, 10)
        return ndcg_at_k(top, [split.test[u] for u in users], 10)

    best = value(weights)
    for a in GRID:
        for b in GRID if len(parts) > 2 else (0.0,):
            trial = [1.0, a, b, *weights[3:]][: len(parts)]
            v = value(trial)
            if v > best + 1e-9:
                best, weights = v, trial
    for _ in range(passes):
        for m in range(1, len(parts)):
            for w in GRID:
                trial = [*weights[:m], w, *weights[m + 1 :]]
                v = value(trial)
                if v > best + 1e-9:
                    best, weights = v, trial
    return tuple(weights)


@dataclass(frozen=True)
class Trained:
    hybrid: Hybrid
    epochs: int
    validation_ndcg: float


def train_hybrid(
    data: Dataset,
    split: Split,
    seed: int,
    epochs_grid: Sequence[int] = LIGHTFM_EPOCHS,
    stop: threading.Event | None = None,
) -> Trained:
    """Validate on the latest fifth of the training data, then refit everything on all of it."""
    inner_data = data.with_events(split.train_events)
    inner = temporal_split(inner_data)
    # LightFM after each validated epoch count comes from one run of the largest; the other parts do not depend
    # on it, so they are fitted and scored once
    snapshots = models.lightfm_snapshots(inner_data, inner.train, models.LightFMParams(), seed, epochs_grid, stop)
    models.check(stop)
    others = fit_others(inner_data, inner)
    other_scores = [masked_scores(p, inner) / s for p, s in zip(others.parts, others.scales, strict=True)]
    q = queries_of(inner.train, user_regions(inner))
    users = [u for u, t in enumerate(inner.test) if t]
    best: tuple[float, int, tuple[float, ...]] | None = None
    for epochs in epochs_grid:
        factors = snapshots[epochs]
        scores = [masked_scores(factors, inner) / scale_of(factors, q), *other_scores]
        weights = fit_weights(scores, inner)
        total = sum(w * s for w, s in zip(weights, scores, strict=True) if w)
        top = top_k(np.asarray(total)[users], 10)
        value = ndcg_at_k(top, [inner.test[u] for u in users], 10)
        if best is None or value > best[0]:
            best = (value, epochs, weights)
    assert best is not None
    value, epochs, weights = best
    full = fit_parts(data, split, epochs, seed, stop)
    return Trained(combine(full.parts, weights, full.scales), epochs, value)
