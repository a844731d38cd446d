"""Registers CatalogService with the all-in-one platform: the demo titles (imported once, before serving),
then the service with its search index and playability from ``encoding.done``."""

from __future__ import annotations

import logging

from services.catalog.config import CatalogConfig
from services.catalog.importer import import_demo_catalog
from services.catalog.schema import SCHEMA
from services.catalog.server import create_server
from services.platform.plugins import Endpoint, RunningService, ServicePlugin, running
from services.platform.runtime import Runtime

NAME = "catalog"
log = logging.getLogger("marquee.catalog")


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, CatalogConfig)
    config = config.model_copy(update={"server": runtime.server_config(config.server, PLUGIN.default_port)})
    await runtime.deps.store.migrate(SCHEMA)
    if config.demo.enabled:
        try:
            await import_demo_catalog(runtime.deps.store, config.demo.media)
        except Exception:
            log.exception("could not load the demo catalog")
    service = await create_server(config, runtime.deps)
    await service.start()
    return running(
        service, config.server.host, [Endpoint("CatalogService", f"{config.server.host}:{service.grpc_port}")]
    )


PLUGIN = ServicePlugin(name=NAME, start=start, order=15, default_port=50052)
