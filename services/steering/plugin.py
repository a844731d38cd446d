"""Registers SteeringService (gRPC) and its content steering endpoint (HTTP) with the all-in-one platform. It
starts before the edge tier so the edges find it and register."""

from __future__ import annotations

from services.platform.plugins import Endpoint, RunningService, ServicePlugin, running
from services.platform.runtime import Runtime
from services.steering.config import SteeringConfig
from services.steering.server import create_server

NAME = "steering"
HTTP_PORT = 8095


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, SteeringConfig)
    server_config = runtime.server_config(config.server, PLUGIN.default_port)
    http_config = config.http
    if not runtime.ephemeral_ports and http_config.port == 0:
        http_config = http_config.model_copy(update={"port": HTTP_PORT})
    config = config.model_copy(update={"server": server_config, "http": http_config})
    service = await create_server(config, runtime.deps)
    await service.start()
    endpoints = [
        Endpoint("SteeringService", f"{config.server.host}:{service.grpc_port}"),
        Endpoint("steering manifests", service.sites["http"].public_url, "http"),
    ]
    return running(service, config.server.host, endpoints)


PLUGIN = ServicePlugin(name=NAME, start=start, order=16, default_port=50055)
