"""Registers the catalog with the all-in-one platform: its keyspace, the demo titles, and playability from
``encoding.done``. (CatalogService's RPCs join here when they land.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.catalog.availability import Availability, run_consumer
from services.catalog.config import CatalogConfig
from services.catalog.importer import import_demo_catalog
from services.catalog.schema import SCHEMA
from services.platform.plugins import RunningService, ServicePlugin
from services.platform.runtime import Runtime

NAME = "catalog"
log = logging.getLogger("marquee.catalog")


async def _import(runtime: Runtime, config: CatalogConfig) -> None:
    try:
        await import_demo_catalog(runtime.deps.store, config.demo.media)
    except Exception:
        log.exception("could not load the demo catalog")


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, CatalogConfig)
    store = runtime.deps.store
    await store.migrate(SCHEMA)
    tasks = [asyncio.create_task(run_consumer(Availability(store), runtime.deps.bus), name="catalog-availability")]
    if config.demo.enabled:
        tasks.append(asyncio.create_task(_import(runtime, config), name="catalog-demo-import"))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return RunningService(name=NAME, endpoints=[], stop=stop)


PLUGIN = ServicePlugin(name=NAME, start=start, order=15, default_port=50052)
