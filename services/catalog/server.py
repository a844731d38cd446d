"""``create_server``: CatalogService, with the catalog view (memory + search index) loaded from the store and
kept current by the catalog's own writes, ``encoding.done`` (playability) and ``catalog.title`` (writes made by
other replicas)."""

from __future__ import annotations

import logging

from marquee.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog.availability import Availability, run_consumer
from services.catalog.config import CatalogConfig
from services.catalog.ratings import Ratings
from services.catalog.reviews import Reviews
from services.catalog.schema import SCHEMA
from services.catalog.servicer import SERVICE_NAME, CatalogServicer
from services.catalog.titles import TITLE
from services.catalog.view import CatalogView
from services.common.bus.consume import follow_topic
from services.common.bus.port import EventBus
from services.common.deps import Dependencies
from services.common.ids import new_id
from services.common.server import ServiceBinding, build_server
from services.common.service import Service
from services.common.topics import CATALOG_TITLE

log = logging.getLogger("marquee.catalog")


async def follow_title_changes(view: CatalogView, bus: EventBus) -> None:
    """Refreshes titles other replicas changed (each replica has its own consumer group, from now on)."""

    async def changed(event: catalog_pb2.TitleChangedEvent) -> None:
        await view.refresh(TITLE.parse(event.title, "title")["title"])

    group = f"catalog-view-{new_id()}"
    await follow_topic(bus, CATALOG_TITLE, group, "view", catalog_pb2.TitleChangedEvent, changed, per_process=True)


class CatalogService(Service):
    """The catalog's service, with the view it serves from (tests and benchmarks look into it)."""

    view: CatalogView


async def create_server(config: CatalogConfig, deps: Dependencies) -> CatalogService:
    """Build the service (not started) with its view loaded; its consumers run once it starts."""
    await deps.store.migrate(SCHEMA)
    view = CatalogView(deps.store)
    loaded = await view.load(legacy_media=config.demo.media)
    log.info("catalog view loaded: %d titles indexed", loaded)
    ratings = Ratings(deps.store, deps.bus)
    repaired = await ratings.repair()
    if repaired:
        log.warning("recounted the rating summaries of %d titles left mid-change by a crash", len(repaired))
    availability = Availability(deps.store, view.refresh_many)
    servicer = CatalogServicer(
        deps.store,
        deps.bus,
        view,
        ratings,
        Reviews(deps.store, config.hide_review_after_reports),
        deps.page_tokens,
        config.max_page_size,
    )
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server),
    )
    server, port = build_server(config.server, [binding], tokens=deps.tokens, denylist=deps.denylist)
    service = CatalogService(
        "catalog",
        grpc=server,
        grpc_port=port,
        background=[
            ("playable", lambda: run_consumer(availability, deps.bus)),
            ("follow", lambda: follow_title_changes(view, deps.bus)),
        ],
    )
    service.view = view
    return service
