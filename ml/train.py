"""The batch job's computation: fit the hybrid on everything, then precompute each profile's top N with reasons.

Deterministic for a seed: LightFM trains on one thread from a seeded RandomState, every other step is exact
arithmetic or a stable sort, so the same data and seed give the same model and the same lists.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from marquee.native import SimilarityIndex
from marquee.v1 import recommendations_pb2
from ml.artifact import Artifact, onboarding_picks, unit_rows
from ml.blend import queries_of, train_hybrid, user_regions
from ml.data import Dataset, Split, matrix
from ml.models import Factors, Regional

# A recommended title is explained by the seen title closest to it when their cosine similarity is at least this.
BECAUSE_THRESHOLD = 0.35
BECAUSE = recommendations_pb2.ReasonType.Name(recommendations_pb2.REASON_TYPE_BECAUSE_YOU_WATCHED)
PERSONALIZED = recommendations_pb2.ReasonType.Name(recommendations_pb2.REASON_TYPE_PERSONALIZED)


@dataclass(frozen=True)
class Pick:
    title_id: str
    score: float
    reason: str  # a ReasonType name
    source_title: str = ""


@dataclass(frozen=True)
class Result:
    artifact: Artifact
    lists: dict[str, list[Pick]]  # profile id -> top N, best first
    summary: dict[str, object]


def everything(data: Dataset) -> Split:
    """All events as training data (the production fit: the blend validates on a cut of them)."""
    return Split(matrix(data), data.events, [set() for _ in data.users()])


def fingerprint(data: Dataset, seed: int) -> str:
    h = hashlib.sha256(f"seed={seed};".encode())
    for item in data.items:
        h.update(f"{item.id}|{item.genres}|{item.year}|{item.maturity};".encode())
    for e in sorted(data.events, key=lambda e: (e.user, e.item, e.time)):
        h.update(f"{e.user}|{e.item}|{e.time}|{e.positive}|{e.region};".encode())
    return h.hexdigest()[:16]


def fit(
    data: Dataset,
    profiles: Sequence[str],
    *,
    seed: int,
    list_size: int,
    epochs: Sequence[int],
    stop: threading.Event | None = None,
) -> Result:
    """``profiles``: the users to precompute lists for (the others, e.g. the demo's audience, only train);
    ``stop`` cancels the run between steps (:class:`ml.models.Cancelled`)."""
    split = everything(data)
    trained = train_hybrid(data, split, seed, epochs, stop)
    hybrid = trained.hybrid
    factors = next(p for p in hybrid.parts if isinstance(p, Factors))
    trend = next(p for p in hybrid.parts if isinstance(p, Regional))
    embeddings = unit_rows(factors.item_embeddings)
    popularity = split.train.positives.sum(axis=0)
    artifact = Artifact(
        version=fingerprint(data, seed),
        items=data.items,
        embeddings=embeddings,
        feature_names=factors.feature_names,
        feature_vectors=factors.feature_vectors,
        trending_regions=trend.regions,
        trending=trend.rows,
        onboarding=onboarding_picks(data.items, popularity),
    )
    lists = precompute(data, split, hybrid.rows, hybrid.queries(queries_of(split.train, user_regions(split))),
                       embeddings, profiles, list_size)  # fmt: skip
    summary: dict[str, object] = {
        "version": artifact.version,
        "seed": seed,
        "users": len(split.train.users),
        "items": len(data.items),
        "events": len(data.events),
        "profiles": len(lists),
        "lightfm_epochs": trained.epochs,
        "weights": {p.name: w for p, w in zip(hybrid.parts, hybrid.weights, strict=True)},
        "validation_ndcg10": round(trained.validation_ndcg, 4),
    }
    return Result(artifact, lists, summary)


def precompute(
    data: Dataset,
    split: Split,
    rows: np.ndarray,
    queries: np.ndarray,
    embeddings: np.ndarray,
    profiles: Sequence[str],
    list_size: int,
) -> dict[str, list[Pick]]:
    index = {u: i for i, u in enumerate(split.train.users)}
    users = [index[p] for p in profiles if p in index]
    if not users:
        return {}
    k = min(list_size, len(data.items))
    ids, scores = SimilarityIndex(rows).top_k(
        np.ascontiguousarray(queries[users]), k, exclude=[split.train.seen[u] for u in users]
    )
    out: dict[str, list[Pick]] = {}
    for row, u in enumerate(users):
        liked = np.flatnonzero(split.train.positives[u])
        picks = []
        for i, score in zip(ids[row], scores[row], strict=True):
            if i < 0:
                break
            reason, source = PERSONALIZED, ""
            if len(liked):
                sims = embeddings[liked] @ embeddings[i]
                best = int(np.argmax(sims))
                if sims[best] >= BECAUSE_THRESHOLD:
                    reason, source = BECAUSE, data.items[int(liked[best])].id
            picks.append(Pick(data.items[int(i)].id, float(score), reason, source))
        out[split.train.users[u]] = picks
    return out
