"""Registers the gRPC-web gateway with the all-in-one platform. It starts after every backend and routes each
``marquee.v1`` service to the backend that serves it (whatever is running: ``--only`` included); its URL is the
one to open in a browser."""

from __future__ import annotations

import logging

from services.gateway.config import GatewayConfig
from services.gateway.server import create_server
from services.platform.plugins import Endpoint, RunningService, ServicePlugin, running
from services.platform.runtime import Runtime

NAME = "gateway"
HTTP_PORT = 8080

log = logging.getLogger("marquee.gateway")


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, GatewayConfig)
    http = config.http
    if runtime.ephemeral_ports:
        http = http.model_copy(update={"port": 0})
    elif http.port == 0:
        http = http.model_copy(update={"port": HTTP_PORT})
    config = config.model_copy(update={"http": http})
    service = await create_server(config, runtime.deps)
    await service.start()
    return running(
        service, config.http.host, [Endpoint("player (open this)", f"{service.gateway.public_url}/", "http")]
    )


# after every backend it routes to (playback is 25)
PLUGIN = ServicePlugin(name=NAME, start=start, order=90, default_port=HTTP_PORT)
