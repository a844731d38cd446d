"""Registers PlaybackService with the all-in-one platform, after the catalog and steering it calls."""

from __future__ import annotations

from services.accounts.config import AccountsConfig
from services.platform.plugins import Endpoint, RunningService, ServicePlugin
from services.platform.runtime import Runtime
from services.playback.config import PlaybackConfig
from services.playback.server import create_server
from services.playback.servicer import PlanLimits

NAME = "playback"
HTTP_PORT = 8096


async def start(runtime: Runtime) -> RunningService:
    config = runtime.config.service(NAME, PlaybackConfig)
    http = config.http
    if not runtime.ephemeral_ports and http.port == 0:
        http = http.model_copy(update={"port": HTTP_PORT})
    config = config.model_copy(
        update={"server": runtime.server_config(config.server, PLUGIN.default_port), "http": http}
    )
    accounts = runtime.config.service("accounts", AccountsConfig)
    plans = {p.id: PlanLimits(p.max_concurrent_streams, p.max_resolution_height) for p in accounts.plans}
    server, port, manifests = await create_server(
        config,
        runtime.deps,
        origin=config.origin or runtime.config.data_dir / "origin",
        catalog_address=runtime.addresses["catalog"],
        steering_address=runtime.addresses["steering"],
        plans=plans,
        url_signing=runtime.config.url_signing,
    )
    await server.start()
    address = f"{config.server.host}:{port}"
    return RunningService(
        name=NAME,
        endpoints=[Endpoint("PlaybackService", address), Endpoint("session manifests", manifests.public_url, "http")],
        stop=server.stop,
        grpc_address=address,
    )


PLUGIN = ServicePlugin(name=NAME, start=start, order=25, default_port=50053, requires=("catalog", "steering"))
