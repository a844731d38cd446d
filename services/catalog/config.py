"""Catalog configuration: the ``[services.catalog]`` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.config import ServerConfig

# The encoder's demo assets (services/encoder/demo.py); the demo titles are spread over them.
DEMO_MEDIA = ("big-buck-bunny", "bikes", "test-pattern", "counter-pattern")


class DemoCatalogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="load the MovieLens-100k titles as the demo catalog on first start")
    media: tuple[str, ...] = Field(DEMO_MEDIA, min_length=1, description="asset ids the demo titles play")


class CatalogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: ServerConfig = ServerConfig()
    demo: DemoCatalogConfig = DemoCatalogConfig()
    hide_review_after_reports: int = Field(
        3, ge=1, description="reports from distinct accounts that hide a review (a moderator's, an admin's, at once)"
    )
    max_page_size: int = Field(100, ge=1, le=1000, description="largest page of titles, results or reviews")
