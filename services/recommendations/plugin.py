"""Registers RecommendationService with the all-in-one platform, after the catalog whose titles it ranks."""

from __future__ import annotations

from services.platform.plugins import Endpoint, RunningService, ServicePlugin, running
from services.platform.runtime import Runtime
from services.recommendations.config import RecommendationsConfig
from services.recommendations.server import create_server

NAME = "recommendations"


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, RecommendationsConfig)
    config = config.model_copy(update={"server": runtime.server_config(config.server, PLUGIN.default_port)})
    service = await create_server(config, runtime.deps)
    await service.start()
    endpoint = Endpoint("RecommendationService", f"{config.server.host}:{service.grpc_port}")
    return running(service, config.server.host, [endpoint])


PLUGIN = ServicePlugin(name=NAME, start=start, order=30, default_port=50054, requires=("catalog",))
