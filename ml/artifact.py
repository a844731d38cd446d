"""What serving needs from a training run, as one compressed npz blob: the titles and their metadata, unit-length
item embeddings (similar titles, "because you watched", realtime rerank), the content features' embeddings (new
titles), trending per region and the onboarding picks."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from ml.data import Item


@dataclass(frozen=True)
class Artifact:
    version: str
    items: tuple[Item, ...]
    embeddings: np.ndarray  # items x d, unit rows
    feature_names: tuple[str, ...]
    feature_vectors: np.ndarray  # features x d
    trending_regions: tuple[str, ...]
    trending: np.ndarray  # items x regions, decayed counts scaled to [0, 1]
    onboarding: np.ndarray  # item indices: popular titles spread over genres

    def to_bytes(self) -> bytes:
        meta = {
            "version": self.version,
            "items": [[i.id, i.name, list(i.genres), i.year, i.maturity, list(i.regions)] for i in self.items],
            "feature_names": list(self.feature_names),
            "trending_regions": list(self.trending_regions),
        }
        out = io.BytesIO()
        np.savez_compressed(
            out,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            embeddings=self.embeddings,
            feature_vectors=self.feature_vectors,
            trending=self.trending,
            onboarding=self.onboarding,
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Artifact:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
            items = tuple(Item(i, n, tuple(g), y, m, tuple(r)) for i, n, g, y, m, r in meta["items"])
            return cls(
                meta["version"],
                items,
                np.ascontiguousarray(z["embeddings"], dtype=np.float32),
                tuple(meta["feature_names"]),
                np.ascontiguousarray(z["feature_vectors"], dtype=np.float32),
                tuple(meta["trending_regions"]),
                np.ascontiguousarray(z["trending"], dtype=np.float32),
                np.asarray(z["onboarding"], dtype=np.int64),
            )


def unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def onboarding_picks(
    items: tuple[Item, ...], popularity: np.ndarray, per_genre: int = 3, limit: int = 60
) -> np.ndarray:
    """The most popular titles, taken round-robin across primary genres so a new profile sees a spread."""
    by_genre: dict[str, list[int]] = {}
    for i in np.argsort(-popularity, kind="stable"):
        genre = items[int(i)].genres[0] if items[int(i)].genres else ""
        queue = by_genre.setdefault(genre, [])
        if len(queue) < per_genre:
            queue.append(int(i))
    order = sorted(by_genre, key=lambda g: -float(popularity[by_genre[g][0]]))
    picks = [q[r] for r in range(per_genre) for g in order if r < len(q := by_genre[g])]
    return np.array(picks[:limit], dtype=np.int64)
