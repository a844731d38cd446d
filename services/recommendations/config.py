"""Recommendations configuration: the ``[services.recommendations]`` section."""

from __future__ import annotations

from pydantic import Field

from services.common.config import Section, ServerConfig


class TrainingConfig(Section):
    seed: int = Field(42, description="training seed: the same data and seed give the same model and lists")
    list_size: int = Field(200, ge=10, le=1000, description="titles precomputed per profile")
    lightfm_epochs: tuple[int, ...] = Field((20,), min_length=1, description="LightFM epoch counts to validate")
    at_start: bool = Field(True, description="train when the service starts (in the background)")
    interval: float = Field(3600.0, ge=0, description="seconds between retrainings; 0: never")
    demo_audience: bool = Field(
        True, description="train on MovieLens-100k's 943 users too (the demo catalog's titles), beside real profiles"
    )


class RecommendationsConfig(Section):
    server: ServerConfig = ServerConfig()
    training: TrainingConfig = TrainingConfig()
    trending_share: float = Field(0.1, ge=0, le=0.5, description="share of top-pick slots given to trending titles")
    recent_views: int = Field(5, ge=1, le=50, description="latest views that rerank the precomputed list")
    rerank_weight: float = Field(1.0, ge=0, description="weight of similarity to the latest views in the rerank")
    genre_penalty: float = Field(0.15, ge=0, description="diversity: score lost per earlier pick of the same genre")
    event_token_ttl: int = Field(
        3600, ge=60, le=86400, description="seconds a served row's event token may report its impression and clicks"
    )
    default_page_size: int = Field(20, ge=1, le=100)
    max_page_size: int = Field(100, ge=1, le=500)
