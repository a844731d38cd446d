"""How a row is put together from the model, the precomputed list and the profile's latest views.

Top picks: the precomputed list (scores scaled to 0..1), plus titles similar to the latest views; every
candidate gains ``rerank_weight`` x its similarity to each latest view (halved per older view), so what was just
watched reshapes the list without waiting for the batch job. Seen and forbidden titles (above the maturity
limit, not licensed in the region) go; a greedy pass lowers a title's score by ``genre_penalty`` for each pick
of the same primary genre before it; every ``1 / trending_share``-th slot goes to the next trending title.
A profile with neither a list nor views gets onboarding picks interleaved with trending (cold start).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np

from marquee.v1 import recommendations_pb2 as pb
from ml.train import BECAUSE_THRESHOLD
from services.recommendations.config import RecommendationsConfig
from services.recommendations.model import ServingModel

SIMILAR_PER_VIEW = 30


@dataclass
class Candidate:
    index: int
    score: float
    reason: int  # ReasonType
    source: int = -1  # item index the reason refers to


@dataclass(frozen=True)
class Context:
    model: ServingModel
    allowed: np.ndarray
    seen: set[int]
    recent: list[int]  # latest views first, not yet in the precomputed list
    latest: list[int]  # every view, latest first
    region: str
    config: RecommendationsConfig

    def ok(self, index: int) -> bool:
        return bool(self.allowed[index]) and index not in self.seen


def _scaled(base: Sequence[Candidate]) -> list[Candidate]:
    if not base:
        return []
    hi, lo = max(c.score for c in base), min(c.score for c in base)
    span = hi - lo or 1.0
    return [Candidate(c.index, (c.score - lo) / span, c.reason, c.source) for c in base]


def _rerank(ctx: Context, base: list[Candidate], size: int) -> list[Candidate]:
    model = ctx.model
    pool = {c.index: c for c in _scaled(base)}
    recent = ctx.recent[: ctx.config.recent_views]
    if recent:
        ids, _ = model.similar(recent, SIMILAR_PER_VIEW, ctx.allowed, sorted(ctx.seen))
        for row, source in zip(ids, recent, strict=True):
            for i in row[row >= 0]:
                pool.setdefault(int(i), Candidate(int(i), 0.0, pb.REASON_TYPE_BECAUSE_YOU_WATCHED, source))
        indices = np.array(list(pool), dtype=np.int64)
        sims = model.embeddings[indices] @ model.embeddings[recent].T  # candidates x views
        decay = 0.5 ** np.arange(len(recent), dtype=np.float32)
        boost = ((np.maximum(sims, 0.0) * decay).sum(axis=1) * ctx.config.rerank_weight).tolist()
        closest = sims.argmax(axis=1)
        explained = (sims[np.arange(len(indices)), closest] >= BECAUSE_THRESHOLD).tolist()
        for i, gain, near, explain in zip(indices.tolist(), boost, closest.tolist(), explained, strict=True):
            c = pool[i]
            c.score += gain
            if explain:
                c.reason, c.source = pb.REASON_TYPE_BECAUSE_YOU_WATCHED, recent[near]
    kept = [c for c in pool.values() if ctx.ok(c.index)]
    kept.sort(key=lambda c: (-c.score, c.index))
    return _diversify(ctx, kept, size)


def _diversify(ctx: Context, ranked: list[Candidate], size: int) -> list[Candidate]:
    """Greedy: each step takes the best score less ``genre_penalty`` x the picks of its primary genre so far. The
    penalty depends only on the genre, so the best candidate is the head of one genre's queue: a heap of genres
    keyed by their head's penalised score, re-keyed only when the genre is picked."""
    penalty = ctx.config.genre_penalty
    genre = ctx.model.primary_genre
    queues: dict[str, list[Candidate]] = {}
    for c in ranked:  # already best first
        queues.setdefault(genre[c.index], []).append(c)
    heap = [(-q[0].score, q[0].index, g, 0) for g, q in queues.items()]
    heapq.heapify(heap)
    out: list[Candidate] = []
    while heap and len(out) < size:
        _, _, g, taken = heapq.heappop(heap)
        out.append(queues[g][taken])
        if taken + 1 < len(queues[g]):
            head = queues[g][taken + 1]
            heapq.heappush(heap, (-(head.score - penalty * (taken + 1)), head.index, g, taken + 1))
    return out


def _trending(ctx: Context, exclude: set[int]) -> Iterator[int]:
    """Trending titles the profile may see and has not seen, most trending first (lazily: callers take a few)."""
    order = ctx.model.trending(ctx.region)
    for i in order[ctx.allowed[order]].tolist():
        if i not in ctx.seen and i not in exclude:
            yield i


def _inject_trending(ctx: Context, ranked: list[Candidate], size: int) -> list[Candidate]:
    share = ctx.config.trending_share
    if share <= 0:
        return ranked[:size]
    every = max(2, round(1 / share))
    present = {c.index for c in ranked}
    queue = iter(_trending(ctx, present))
    out: list[Candidate] = []
    rest = iter(ranked)
    while len(out) < size:
        slot = len(out) + 1
        pick = next(queue, None) if slot % every == 0 else None
        if pick is not None:
            out.append(Candidate(pick, 0.0, pb.REASON_TYPE_TRENDING))
            continue
        nxt = next(rest, None)
        if nxt is None:
            break
        out.append(nxt)
    return out


def cold_start(ctx: Context, size: int) -> list[Candidate]:
    model = ctx.model
    onboarding = [int(i) for i in model.artifact.onboarding if ctx.ok(int(i))]
    trending = list(islice(_trending(ctx, set(onboarding)), size))
    out: list[Candidate] = []
    seen: set[int] = set()
    for pair in zip(onboarding, trending, strict=False):
        for i, reason in zip(pair, (pb.REASON_TYPE_ONBOARDING, pb.REASON_TYPE_TRENDING), strict=True):
            if i not in seen:
                seen.add(i)
                out.append(Candidate(i, 0.0, reason))
    out += [Candidate(i, 0.0, pb.REASON_TYPE_TRENDING) for i in trending if i not in seen]
    return out[:size]


def top_picks(ctx: Context, base: list[Candidate], size: int) -> list[Candidate]:
    if not base and not ctx.recent:
        return cold_start(ctx, size)
    return _inject_trending(ctx, _rerank(ctx, base, size), size)


def because_you_watched(ctx: Context, source: int, size: int) -> list[Candidate]:
    ids, scores = ctx.model.similar([source], size, ctx.allowed, sorted(ctx.seen | {source}))
    return [
        Candidate(int(i), float(s), pb.REASON_TYPE_BECAUSE_YOU_WATCHED, source)
        for i, s in zip(ids[0], scores[0], strict=True)
        if i >= 0
    ]


def similar_titles(ctx: Context, source: int, size: int) -> list[Candidate]:
    return [Candidate(c.index, c.score, pb.REASON_TYPE_SIMILAR, source) for c in because_you_watched(ctx, source, size)]


def trending(ctx: Context, size: int) -> list[Candidate]:
    return [Candidate(i, 0.0, pb.REASON_TYPE_TRENDING) for i in islice(_trending(ctx, set()), size)]
