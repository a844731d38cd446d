"""Registers AccountService with the all-in-one platform (`marquee up`)."""

from __future__ import annotations

from services.accounts.config import AccountsConfig
from services.accounts.server import create_server
from services.platform.plugins import Endpoint, RunningService, ServicePlugin
from services.platform.runtime import Runtime

NAME = "accounts"


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, AccountsConfig)
    config = config.model_copy(update={"server": runtime.server_config(config.server, PLUGIN.default_port)})
    server, port = await create_server(config, runtime.deps)
    await server.start()
    address = f"{config.server.host}:{port}"
    return RunningService(
        name=NAME,
        endpoints=[Endpoint("AccountService", address)],
        stop=lambda: server.stop(),
        grpc_address=address,
        health_services=server.service_names,
    )


PLUGIN = ServicePlugin(name=NAME, start=start, order=10, default_port=50051)
