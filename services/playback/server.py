"""``create_server``: PlaybackService (gRPC) and the per-session manifests (HTTP)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import grpc
from pydantic import SecretStr

from marquee.native import TokenKeyring
from marquee.v1 import catalog_pb2_grpc, playback_pb2_grpc, steering_pb2_grpc
from services.common.auth import ServiceToken
from services.common.client import connect
from services.common.config import UrlSigningConfig
from services.common.deps import Dependencies
from services.common.http import HttpSite
from services.common.server import Server, ServiceBinding, build_server
from services.playback.config import PlaybackConfig
from services.playback.manifests import start_manifests
from services.playback.media import MediaLibrary
from services.playback.schema import SCHEMA
from services.playback.servicer import SERVICE_NAME, PlanLimits, PlaybackServicer


def url_keyring(signing: UrlSigningConfig) -> TokenKeyring:
    keys: Mapping[str, SecretStr] = signing.keys
    return TokenKeyring({kid: s.get_secret_value().encode() for kid, s in keys.items()}, signing.signing_kid)


async def create_server(
    config: PlaybackConfig,
    deps: Dependencies,
    *,
    origin: Path,
    catalog_address: str,
    steering_address: str,
    plans: dict[str, PlanLimits],
    url_signing: UrlSigningConfig,
) -> tuple[Server, int, HttpSite]:
    """Build the gRPC server (not started) and start the manifest endpoint; stopping the server stops both."""
    await deps.store.migrate(SCHEMA)
    media = MediaLibrary(origin)
    keys = url_keyring(url_signing)
    manifests = await start_manifests(deps.store, media, keys, config.http)
    catalog_channel: grpc.aio.Channel = connect(catalog_address)
    steering_channel: grpc.aio.Channel = connect(steering_address)
    servicer = PlaybackServicer(
        config,
        deps.store,
        deps.bus,
        media,
        catalog_pb2_grpc.CatalogServiceStub(catalog_channel),
        steering_pb2_grpc.SteeringServiceStub(steering_channel),
        ServiceToken(deps.tokens, "svc-playback"),
        keys,
        plans,
        lambda: manifests.public_url,
        deps.page_tokens,
    )
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: playback_pb2_grpc.add_PlaybackServiceServicer_to_server(servicer, server),
    )
    try:
        server, port = build_server(config.server, [binding], tokens=deps.tokens)
    except Exception:
        await manifests.stop()
        raise

    async def close() -> None:
        await manifests.stop()
        await catalog_channel.close(None)
        await steering_channel.close(None)

    server.add_on_stop(close)
    return server, port, manifests
