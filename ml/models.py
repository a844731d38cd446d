"""Candidate models, each a linear scorer: score(user, item) = query(user) . rows[item].

Keeping every model in that form lets one Rust kernel (``marquee.native.SimilarityIndex``) rank for all of them,
with each profile's seen titles excluded and titles above its maturity masked out, and lets the hybrid be a
weighted concatenation of the models' rows and queries (see :mod:`ml.blend`).

- popularity: interaction counts;
- trending: interaction counts per region with exponential time decay (half-life in days);
- ItemKNN: cosine item-item similarity over co-occurrence, each item's strongest neighbours kept;
- EASE (Steck, 2019): the closed-form item-item regression;
- LightFM (Kula, 2015) with the WARP loss, items described by their identity and content features (genres,
  decade, maturity) so that a title nobody has watched yet still gets an embedding from its features.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ml.data import Dataset, Event, Matrix

GLOBAL_REGION = ""


@dataclass(frozen=True)
class Queries:
    """Who to score: their positives (rows x items), their index in the training users (-1 if unknown) and their
    region."""

    positives: np.ndarray
    users: np.ndarray
    regions: Sequence[str]


@dataclass(frozen=True)
class Linear:
    name: str
    rows: np.ndarray  # items x d, float32

    def queries(self, q: Queries) -> np.ndarray:
        raise NotImplementedError

    def scores(self, q: Queries) -> np.ndarray:
        return np.asarray(self.queries(q) @ self.rows.T, dtype=np.float32)


@dataclass(frozen=True)
class Constant(Linear):
    """Scores that do not depend on the user (popularity)."""

    def queries(self, q: Queries) -> np.ndarray:
        return np.ones((len(q.users), 1), dtype=np.float32)


@dataclass(frozen=True)
class ItemItem(Linear):
    """Scores = the user's positives x an item-item matrix (ItemKNN, EASE); rows[i] = the matrix's column i."""

    def queries(self, q: Queries) -> np.ndarray:
        return np.ascontiguousarray(q.positives, dtype=np.float32)


@dataclass(frozen=True)
class Regional(Linear):
    """One column per region (trending); a user's query selects their region's column, or the global one."""

    regions: tuple[str, ...] = ()

    def queries(self, q: Queries) -> np.ndarray:
        out = np.zeros((len(q.users), len(self.regions)), dtype=np.float32)
        column = {r: i for i, r in enumerate(self.regions)}
        for row, region in enumerate(q.regions):
            out[row, column.get(region, column[GLOBAL_REGION])] = 1.0
        return out


@dataclass(frozen=True)
class Factors(Linear):
    """LightFM: rows = [item embedding, item bias], queries = [user embedding, 1]. A user unknown to the model is
    folded in as the mean embedding of their positives."""

    user_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    # Content features' embeddings, to embed a title the model has not seen from its features alone.
    feature_names: tuple[str, ...] = ()
    feature_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def queries(self, q: Queries) -> np.ndarray:
        dims = self.user_embeddings.shape[1]
        out = np.ones((len(q.users), dims + 1), dtype=np.float32)
        for row, u in enumerate(q.users):
            if u >= 0:
                out[row, :dims] = self.user_embeddings[u]
            else:
                picked = q.positives[row] > 0
                out[row, :dims] = self.rows[picked, :dims].mean(axis=0) if picked.any() else 0.0
        return out

    @property
    def item_embeddings(self) -> np.ndarray:
        return np.ascontiguousarray(self.rows[:, :-1])


def popularity(train: Matrix) -> Constant:
    counts = train.positives.sum(axis=0, dtype=np.float32)
    return Constant("popularity", (counts / max(float(counts.max()), 1.0)).reshape(-1, 1))


def trending(data: Dataset, events: Sequence[Event], half_life_days: float = 7.0, min_events: int = 50) -> Regional:
    """Interactions decayed by age relative to the newest event; regions with fewer than ``min_events`` events
    use the global column."""
    newest = max((e.time for e in events), default=0)
    decay = np.log(2) / (half_life_days * 86_400)
    counts: dict[str, np.ndarray] = {GLOBAL_REGION: np.zeros(len(data.items), dtype=np.float64)}
    sizes: dict[str, int] = {}
    for e in events:
        i = data.index.get(e.item)
        if i is None or not e.positive:
            continue
        w = float(np.exp(-decay * (newest - e.time)))
        counts[GLOBAL_REGION][i] += w
        if e.region:
            counts.setdefault(e.region, np.zeros(len(data.items), dtype=np.float64))[i] += w
            sizes[e.region] = sizes.get(e.region, 0) + 1
    regions = (GLOBAL_REGION, *sorted(r for r, n in sizes.items() if n >= min_events))
    # ties (e.g. nothing recent at all) are broken by all-time counts, never by title order
    all_time = np.zeros(len(data.items), dtype=np.float64)
    for e in events:
        if e.positive and (i := data.index.get(e.item)) is not None:
            all_time[i] += 1.0
    tie_break = 1e-6 * all_time / max(all_time.max(), 1.0)
    rows = np.stack([counts[r] / max(counts[r].max(), 1e-12) + tie_break for r in regions], axis=1).astype(np.float32)
    return Regional("trending", rows, regions)


def itemknn(train: Matrix, neighbours: int = 100) -> ItemItem:
    x = train.positives
    norms = np.sqrt(x.sum(axis=0)) + 1e-9
    sim = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    cutoff = -np.sort(-sim, axis=0)[min(neighbours, sim.shape[0] - 1)]
    sim = np.where(sim >= cutoff, sim, 0.0)
    return ItemItem("ItemKNN", np.ascontiguousarray(sim.T, dtype=np.float32))


def ease(train: Matrix, reg: float = 500.0) -> ItemItem:
    g = (train.positives.T @ train.positives).astype(np.float64)
    g[np.diag_indices_from(g)] += reg
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return ItemItem("EASE", np.ascontiguousarray(b.T, dtype=np.float32))


def feature_matrix(
    features: Sequence[Sequence[str]], identity: float | None = None
) -> tuple[sp.csr_matrix, tuple[str, ...]]:
    """Identity plus the named features per row, each row summing to one (LightFM's recommendation): equal
    weights, or ``identity`` for the identity and the rest shared by the features; and the features' names (the
    columns after the identities)."""
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    n = len(features)
    for i, feats in enumerate(features):
        columns = [i] + [n + vocabulary.setdefault(f, len(vocabulary)) for f in feats]
        own = 1.0 / (1 + len(feats)) if identity is None or not feats else identity
        rows += [i] * len(columns)
        cols += columns
        vals += [own] + [(1.0 - own) / len(feats)] * len(feats) if feats else [1.0]
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(n, n + len(vocabulary)), dtype=np.float32)
    return matrix, tuple(vocabulary)


# A profile's own embedding carries most of its representation; its features (age, region...) share the rest, so
# that they help sparse profiles without blurring users with long histories.
USER_IDENTITY = 0.8


@dataclass(frozen=True)
class LightFMParams:
    components: int = 64
    learning_rate: float = 0.05
    max_sampled: int = 30
    alpha: float = 1e-6
    epochs: int = 15


class Cancelled(Exception):
    """Training was asked to stop (the service is shutting down)."""


def check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Cancelled("training cancelled")


def lightfm(
    data: Dataset, train: Matrix, params: LightFMParams, seed: int, stop: threading.Event | None = None
) -> Factors:
    """WARP on the positives with item features; one thread, so the same seed gives the same model. Trains one
    epoch at a time so that ``stop`` ends it between epochs."""
    return lightfm_snapshots(data, train, params, seed, (params.epochs,), stop)[params.epochs]


def lightfm_snapshots(
    data: Dataset,
    train: Matrix,
    params: LightFMParams,
    seed: int,
    epochs: Sequence[int],
    stop: threading.Event | None = None,
) -> dict[int, Factors]:
    """:func:`lightfm` after each of ``epochs`` epochs (``params.epochs`` is not used), from one run of the largest:
    training goes one epoch at a time drawing from one seeded random state, so the model after n epochs of a
    longer run is the very model a run of n epochs ends with."""
    from lightfm import LightFM  # imported here: the extension is only needed for training

    model = LightFM(
        no_components=params.components,
        loss="warp",
        learning_rate=params.learning_rate,
        item_alpha=params.alpha,
        user_alpha=params.alpha,
        max_sampled=params.max_sampled,
        random_state=np.random.RandomState(seed),
    )
    features, names = feature_matrix([item.features() for item in data.items])
    user_features, _ = feature_matrix([data.profiles.get(u, ()) for u in train.users], USER_IDENTITY)
    interactions = sp.coo_matrix(train.positives)
    wanted = set(epochs)
    out: dict[int, Factors] = {}
    for done in range(1, max(wanted, default=0) + 1):
        check(stop)
        model.fit_partial(interactions, user_features=user_features, item_features=features, epochs=1, num_threads=1)
        if done in wanted:
            out[done] = _factors(model, data, features, user_features, names)
    return out


def _factors(
    model: Any, data: Dataset, features: sp.csr_matrix, user_features: sp.csr_matrix, names: tuple[str, ...]
) -> Factors:
    biases, embeddings = model.get_item_representations(features)
    _, users = model.get_user_representations(user_features)
    rows = np.hstack([embeddings, biases.reshape(-1, 1)]).astype(np.float32)
    # a copy: the model goes on training in place after a snapshot
    content = np.array(model.item_embeddings[len(data.items) :], dtype=np.float32)
    return Factors(
        "LightFM",
        np.ascontiguousarray(rows),
        np.ascontiguousarray(users, dtype=np.float32),
        names,
        np.ascontiguousarray(content),
    )
