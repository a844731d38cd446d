"""``create_server``: PlaybackService (gRPC) and the per-session manifests (HTTP)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import grpc
from pydantic import SecretStr

from marquee.native import TokenKeyring
from marquee.v1 import catalog_pb2_grpc, playback_pb2_grpc, steering_pb2_grpc
from services.common.auth import AccessTokens
from services.common.client import connect
from services.common.config import UrlSigningConfig
from services.common.deps import Dependencies
from services.common.server import Server, ServiceBinding, build_server
from services.playback.config import PlaybackConfig
from services.playback.manifests import ManifestServer
from services.playback.media import MediaLibrary
from services.playback.schema import SCHEMA
from services.playback.servicer import SERVICE_NAME, PlanLimits, PlaybackServicer

SERVICE_SUBJECT = "svc-playback"


class ServiceToken:
    """A short-lived admin token for calls to catalog and steering, minted again before it expires."""

    def __init__(self, tokens: AccessTokens, ttl: int = 600) -> None:
        self._tokens, self._ttl = tokens, ttl
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._renew_at = 0.0

    def __call__(self) -> tuple[tuple[str, str], ...]:
        if time.time() >= self._renew_at:
            token = self._tokens.issue(SERVICE_SUBJECT, roles=["admin"], ttl=self._ttl).token
            self._metadata = (("authorization", f"Bearer {token}"),)
            self._renew_at = time.time() + self._ttl / 2
        return self._metadata


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
) -> tuple[Server, int, ManifestServer]:
    """Build the gRPC server (not started) and start the manifest endpoint; stopping the server stops both."""
    await deps.store.migrate(SCHEMA)
    media = MediaLibrary(origin)
    keys = url_keyring(url_signing)
    manifests = await ManifestServer.start(deps.store, media, keys, config.http)
    catalog_channel: grpc.aio.Channel = connect(catalog_address)
    steering_channel: grpc.aio.Channel = connect(steering_address)
    servicer = PlaybackServicer(
        config,
        deps.store,
        deps.bus,
        media,
        catalog_pb2_grpc.CatalogServiceStub(catalog_channel),
        steering_pb2_grpc.SteeringServiceStub(steering_channel),
        ServiceToken(deps.tokens),
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
