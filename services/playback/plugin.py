"""Registers PlaybackService (and LicenseService and DownloadService, on the same server) with the all-in-one
platform, after the catalog and steering it calls and the encoder it reads content keys from (when it runs:
without it, licences are refused)."""

from __future__ import annotations

from services.platform.plugins import Endpoint, RunningService, ServicePlugin, running
from services.platform.runtime import Runtime
from services.playback.config import PlaybackConfig
from services.playback.server import create_server

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
    service = await create_server(config, runtime.deps)
    await service.start()
    endpoints = [
        Endpoint("PlaybackService", f"{config.server.host}:{service.grpc_port}"),
        Endpoint("session manifests", service.sites["http"].public_url, "http"),
        Endpoint("LicenseService", f"{config.server.host}:{service.grpc_port}"),
        Endpoint("DownloadService", f"{config.server.host}:{service.grpc_port}"),
    ]
    return running(service, config.server.host, endpoints)


PLUGIN = ServicePlugin(name=NAME, start=start, order=25, default_port=50053, requires=("catalog", "steering"))
