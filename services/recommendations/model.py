"""The serving side of a trained model: titles by id, a similarity index over the item embeddings (cosine:
the rows are unit length), the allowed-title masks per maturity limit and region, trending orders per region.
Titles created after training join from their content features."""

from __future__ import annotations

import numpy as np

from marquee.native import SimilarityIndex
from ml.artifact import Artifact, unit_rows
from ml.data import Item
from ml.models import GLOBAL_REGION


class ServingModel:
    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.version = artifact.version
        self._set_items(list(artifact.items), artifact.embeddings)
        columns = {r: i for i, r in enumerate(artifact.trending_regions)}
        self._trending = {
            r: np.argsort(-artifact.trending[:, c], kind="stable")[: min(500, len(artifact.items))]
            for r, c in columns.items()
        }

    def _set_items(self, items: list[Item], embeddings: np.ndarray) -> None:
        self.items = items
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.index = {it.id: i for i, it in enumerate(items)}
        self.similarity = SimilarityIndex(self.embeddings)
        self.maturity = np.array([it.maturity for it in items], dtype=np.int64)
        self.primary_genre = [it.genres[0] if it.genres else "" for it in items]
        self._masks: dict[tuple[int | None, str], np.ndarray] = {}

    def add_title(self, item: Item) -> bool:
        """Adds a title the model has not seen (embedded from its features); False if it is already known."""
        if item.id in self.index:
            return False
        index = {name: i for i, name in enumerate(self.artifact.feature_names)}
        picked = [index[f] for f in item.features() if f in index]
        vector = self.artifact.feature_vectors[picked].mean(axis=0) if picked else np.zeros(self.embeddings.shape[1])
        row = unit_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        self._set_items([*self.items, item], np.vstack([self.embeddings, row]))
        return True

    def allowed(self, max_maturity: int | None, region: str) -> np.ndarray:
        """Titles the profile may see: within its maturity limit and licensed in its region (cached per pair)."""
        cached = self._masks.get((max_maturity, region))
        if cached is not None:
            return cached
        mask = np.ones(len(self.items), dtype=np.bool_)
        if max_maturity is not None:
            mask &= self.maturity <= max_maturity
        if region:
            mask &= np.array([not it.regions or region in it.regions for it in self.items], dtype=np.bool_)
        self._masks[(max_maturity, region)] = mask
        return mask

    def trending(self, region: str) -> np.ndarray:
        """Item indices, most trending first, for the region (the global order where the region has too little)."""
        return self._trending.get(region, self._trending[GLOBAL_REGION])

    def similar(
        self, sources: list[int], k: int, allowed: np.ndarray, exclude: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k titles most similar to each source (cosine), one row per source."""
        queries = np.ascontiguousarray(self.embeddings[sources])
        return self.similarity.top_k(queries, k, allowed=allowed, exclude=[exclude] * len(sources))
