"""Registers AccountService with the all-in-one platform (`marquee up`)."""

from __future__ import annotations

from services.accounts.config import AccountsConfig
from services.accounts.demo import seed_demo_account
from services.accounts.server import create_server
from services.platform.plugins import Endpoint, RunningService, ServicePlugin, running
from services.platform.runtime import Runtime

NAME = "accounts"


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, AccountsConfig)
    config = config.model_copy(update={"server": runtime.server_config(config.server, PLUGIN.default_port)})
    service = await create_server(config, runtime.deps)
    if config.demo.enabled:
        await seed_demo_account(runtime.deps.store, config, runtime.deps.auth.refresh_token_ttl, runtime.deps.plans)
    await service.start()
    endpoints = [Endpoint("AccountService", f"{config.server.host}:{service.grpc_port}")]
    if config.demo.enabled:
        demo = config.demo
        endpoints.append(Endpoint("demo sign-in", f"{demo.email} / {demo.password.get_secret_value()}", "info"))
    return running(service, config.server.host, endpoints)


PLUGIN = ServicePlugin(name=NAME, start=start, order=10, default_port=50051)
