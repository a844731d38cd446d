"""Registers EncodingService with the all-in-one platform, and queues the demo content."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading

from services.common.store.port import Store
from services.common.tasks import cancel_all
from services.common.wheeldata import DownloadStopped
from services.encoder import demo
from services.encoder.config import EncoderConfig
from services.encoder.jobs import Jobs
from services.encoder.server import create_server
from services.platform.plugins import Endpoint, RunningService, ServicePlugin, running
from services.platform.runtime import Runtime

NAME = "encoder"
log = logging.getLogger("marquee.encoder")


async def _queue_demo(store: Store, config: EncoderConfig, runtime: Runtime, stopping: threading.Event) -> None:
    try:
        masters = await asyncio.to_thread(
            demo.masters, runtime.config.data_dir / "masters", config.demo.synthetic_seconds, stopping.is_set
        )
        jobs = Jobs(store)
        submitted = await demo.submit(jobs, masters)
        await demo.report_progress(jobs, submitted)
    except (demo.DemoStopped, DownloadStopped):
        log.info("stopped before the demo content was queued; it is queued at the next start")
    except Exception:
        log.exception("could not queue the demo content")


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, EncoderConfig)
    config = config.model_copy(update={"server": runtime.server_config(config.server, PLUGIN.default_port)})
    origin = config.origin or runtime.config.data_dir / "origin"
    service = await create_server(config, runtime.deps)
    await service.start()
    stopping = threading.Event()  # tells the demo's thread (downloads, masters) to give up
    demo_task = (
        asyncio.create_task(_queue_demo(runtime.deps.store, config, runtime, stopping)) if config.demo.enabled else None
    )

    async def stop() -> None:
        stopping.set()
        if demo_task is not None:
            await cancel_all([demo_task])
        await service.stop()

    address = f"{config.server.host}:{service.grpc_port}"
    endpoints = [
        Endpoint("EncodingService", address),
        Endpoint("origin", str(origin.resolve()), "path"),
        Endpoint("ContentKeyService", address),
    ]
    return dataclasses.replace(running(service, config.server.host, endpoints), stop=stop)


PLUGIN = ServicePlugin(name=NAME, start=start, order=20, default_port=50056)
