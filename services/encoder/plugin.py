"""Registers EncodingService with the all-in-one platform, and queues the demo content."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.common.store.port import Store
from services.encoder import demo
from services.encoder.config import EncoderConfig
from services.encoder.jobs import Jobs
from services.encoder.server import create_server
from services.platform.plugins import Endpoint, RunningService, ServicePlugin
from services.platform.runtime import Runtime

NAME = "encoder"
log = logging.getLogger("marquee.encoder")


async def _queue_demo(store: Store, config: EncoderConfig, runtime: Runtime) -> None:
    try:
        masters = await asyncio.to_thread(
            demo.masters, runtime.config.data_dir / "masters", config.demo.synthetic_seconds
        )
        await demo.submit(Jobs(store), masters)
    except Exception:
        log.exception("could not queue the demo content")


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, EncoderConfig)
    config = config.model_copy(update={"server": runtime.server_config(config.server, PLUGIN.default_port)})
    origin = config.origin or runtime.config.data_dir / "origin"
    server, port = await create_server(config, runtime.deps, origin)
    await server.start()
    demo_task = asyncio.create_task(_queue_demo(runtime.deps.store, config, runtime)) if config.demo.enabled else None

    async def stop() -> None:
        if demo_task is not None:
            demo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await demo_task
        await server.stop()

    address = f"{config.server.host}:{port}"
    return RunningService(
        name=NAME,
        endpoints=[Endpoint("EncodingService", address), Endpoint("origin", str(origin.resolve()), "path")],
        stop=stop,
        grpc_address=address,
        health_services=server.service_names,
    )


PLUGIN = ServicePlugin(name=NAME, start=start, order=20, default_port=50056)
