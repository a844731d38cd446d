"""Training data for the recommender: items with their features and per-profile interaction events.

Two sources build the same :class:`Dataset`: MovieLens-100k (the offline evaluation, and the demo's background
audience) and the store (what profiles watched, finished and rated, logged by the recommendations service from
the bus). Signals: a finished or substantially watched title and a rating of 3 stars or more are positives; a
low rating or a title abandoned early marks the title as seen (never recommended again) without being a
positive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from marquee.v1 import common_pb2
from services.common.movielens import MovieLens

TEST_SHARE = 0.2
CAST_FEATURES = 3  # leading cast members that become item features
STRICTEST = common_pb2.MATURITY_RATING_ADULT


def maturity_level(rating: str) -> int:
    """The ``MaturityRating`` value of a name (values grow with strictness); unknown names count as the strictest."""
    try:
        return common_pb2.MaturityRating.Value(rating) or STRICTEST
    except ValueError:
        return STRICTEST


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    genres: tuple[str, ...] = ()
    year: int | None = None
    maturity: int = common_pb2.MATURITY_RATING_ALL  # a MaturityRating value
    regions: tuple[str, ...] = ()  # licensed regions; empty = everywhere
    cast: tuple[str, ...] = ()  # leading cast, billing order

    def features(self) -> list[str]:
        """Content features shared across items (LightFM's item features besides the item's own identity)."""
        out = [f"genre:{g}" for g in self.genres]
        if self.year:
            out.append(f"decade:{min(max(self.year, 1920), 2020) // 10 * 10}")
        out.append(f"maturity:{self.maturity}")
        out += [f"cast:{name}" for name in self.cast[:CAST_FEATURES]]
        return out


@dataclass(frozen=True)
class Event:
    user: str
    item: str
    time: int  # unix seconds
    positive: bool = True
    region: str = ""


@dataclass(frozen=True)
class Dataset:
    items: tuple[Item, ...]
    events: tuple[Event, ...]
    # profile features per user (LightFM's user features besides the user's identity)
    profiles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {it.id: i for i, it in enumerate(self.items)})

    def users(self) -> list[str]:
        return sorted({e.user for e in self.events})

    def merged(self, other: Dataset) -> Dataset:
        """These items with both data sets' events and profile features."""
        known = set(self.index)
        events = tuple(e for e in other.events if e.item in known)
        return Dataset(self.items, self.events + events, {**self.profiles, **other.profiles})

    def with_events(self, events: Iterable[Event]) -> Dataset:
        return Dataset(self.items, tuple(events), self.profiles)


def movielens_dataset(data: MovieLens, ids: Mapping[int, str] | None = None, region: str = "US") -> Dataset:
    """MovieLens as a dataset: every rating is an interaction (the usual implicit protocol); ``ids`` maps item ids
    to title ids (default: the item id as text) and users become ``movielens-{id}``."""
    name = ids.get if ids is not None else None

    def item_id(i: int) -> str:
        return (name(i) if name else None) or str(i)

    items = tuple(
        Item(item_id(m.item_id), m.title, m.genres, m.year) for m in sorted(data.movies, key=lambda m: m.item_id)
    )
    events = tuple(Event(f"movielens-{r.user_id}", item_id(r.item_id), r.timestamp, True, region) for r in data.ratings)
    profiles = {
        f"movielens-{u.user_id}": (
            f"age:{min(u.age, 69) // 10 * 10}",
            f"gender:{u.gender}",
            f"occupation:{u.occupation}",
        )
        for u in data.users
    }
    return Dataset(items, events, profiles)


@dataclass(frozen=True)
class Matrix:
    """Interactions as dense users x items arrays (the demo scale: about a thousand of each)."""

    users: list[str]
    positives: np.ndarray  # float32 0/1: what the models learn from
    seen: list[list[int]]  # item indices per user, never recommended again (positives and negatives)


def matrix(data: Dataset, events: Iterable[Event] | None = None, users: list[str] | None = None) -> Matrix:
    users = users if users is not None else data.users()
    u_index = {u: i for i, u in enumerate(users)}
    positives = np.zeros((len(users), len(data.items)), dtype=np.float32)
    seen: list[set[int]] = [set() for _ in users]
    for e in data.events if events is None else events:
        u, i = u_index.get(e.user), data.index.get(e.item)
        if u is None or i is None:
            continue
        seen[u].add(i)
        if e.positive:
            positives[u, i] = 1.0
    return Matrix(users, positives, [sorted(s) for s in seen])


@dataclass(frozen=True)
class Split:
    """Training interactions and the held-out items (positives only) per user."""

    train: Matrix
    train_events: tuple[Event, ...]
    test: list[set[int]]

    @property
    def items(self) -> int:
        return int(self.train.positives.shape[1])


def temporal_split(data: Dataset, test_share: float = TEST_SHARE) -> Split:
    """Each user's latest ``test_share`` of events (by time, at least one) held out; users keep their index."""
    users = data.users()
    by_user: dict[str, list[Event]] = {}
    for e in data.events:
        by_user.setdefault(e.user, []).append(e)
    train_events: list[Event] = []
    held: dict[str, list[Event]] = {}
    for user, events in by_user.items():
        events.sort(key=lambda e: (e.time, e.item))
        cut = len(events) - max(1, math.ceil(len(events) * test_share))
        train_events += events[:cut]
        held[user] = events[cut:]
    train = matrix(data, train_events, users)
    test: list[set[int]] = []
    for u, user in enumerate(users):
        seen = set(train.seen[u])
        test.append({data.index[e.item] for e in held.get(user, []) if e.positive} - seen)
    return Split(train, tuple(train_events), test)
