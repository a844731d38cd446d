"""``create_server``: PlaybackService, LicenseService and DownloadService (gRPC), the per-session and per-download
manifests and ClearKey licences (HTTP), and the follower of ``accounts.revoked`` that ends the playback sessions
(and revokes the downloads) of revoked access tokens, and (positions on Redis) the
``positions-writer`` that persists positions to the store, and the expiry sweep that ends the sessions whose
heartbeats stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from marquee.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    catalog_pb2_grpc,
    content_keys_pb2_grpc,
    download_pb2_grpc,
    license_pb2_grpc,
    playback_pb2_grpc,
    steering_pb2_grpc,
)
from services.common import urltokens
from services.common.auth import ServiceToken
from services.common.bus.consume import follow_topic
from services.common.bus.port import EventBus
from services.common.bus.redis import RedisBus
from services.common.client import connect
from services.common.config import ConfigError
from services.common.deps import Dependencies
from services.common.ids import new_id
from services.common.names import NamePattern
from services.common.server import ServiceBinding, build_server
from services.common.service import Background, Service
from services.common.topics import ACCOUNTS_REVOKED
from services.playback.config import PlaybackConfig
from services.playback.downloads import SERVICE_NAME as DOWNLOAD_SERVICE_NAME
from services.playback.downloads import DownloadServicer
from services.playback.ingest import IngestFront, native_front_possible, open_front
from services.playback.license import SERVICE_NAME as LICENSE_SERVICE_NAME
from services.playback.license import ClearKeyEndpoint, Licenser, LicenseServicer
from services.playback.manifests import bind_manifests
from services.playback.media import MediaLibrary
from services.playback.positions import Positions
from services.playback.positions_redis import RedisPositions
from services.playback.schema import SCHEMA
from services.playback.servicer import SERVICE_NAME, PlaybackServicer

ACCOUNT = NamePattern("accounts/{account}")
log = logging.getLogger("marquee.playback")


async def follow_account_revocations(servicer: PlaybackServicer, downloads: DownloadServicer, bus: EventBus) -> None:
    """Ends the playback sessions, and revokes the downloads, made with access tokens the accounts service revoked
    (sign-out, every session revoked, password changed, account deleted): their signed URLs are revoked at the
    edges with them. One consumer group for every replica: ending a session or revoking a download is a
    compare-and-set any of them can make (applying an event twice changes nothing)."""

    async def revoked(event: accounts_pb2.AccessRevokedEvent) -> None:
        account_id = ACCOUNT.parse(event.account, "account")["account"]
        await servicer.end_revoked(account_id, event.session, event.revoke_time.ToMicroseconds())
        await downloads.revoke_signed_out(account_id, event.session, event.revoke_time.ToMicroseconds())

    await follow_topic(
        bus, ACCOUNTS_REVOKED, "playback-revocations", "playback", accounts_pb2.AccessRevokedEvent, revoked
    )


async def sweep_expired(servicer: PlaybackServicer, interval: float) -> None:
    """Ends the sessions whose lease lapsed, every ``interval`` seconds (every replica sweeps; each session ends
    once). A failed sweep (the store unreachable) is logged and tried again at the next interval."""
    while True:
        await asyncio.sleep(interval)
        try:
            ended = await servicer.end_expired()
        except Exception:
            log.exception("playback: the expiry sweep failed; trying again in %.0f s", interval)
            continue
        if ended:
            log.info("playback: %d expired sessions ended", ended)


def open_positions(config: PlaybackConfig, deps: Dependencies) -> Positions | RedisPositions:
    """Positions on the store, or on Redis with write-behind (``positions = "redis"``: the stream is the Redis bus's
    ``playback.update``, so it needs ``[bus] kind = "redis"``)."""
    positions = Positions(deps.store, config.finished_fraction)
    if config.positions == "store":
        return positions
    if not isinstance(deps.bus, RedisBus):
        raise ConfigError('services.playback.positions = "redis" needs the Redis bus ([bus] kind = "redis")')
    return RedisPositions(deps.store, positions, deps.bus, prefix=deps.redis_prefix, idle_ttl=config.positions_idle_ttl)


async def create_server(config: PlaybackConfig, deps: Dependencies) -> Service:
    """Build the service (not started): the gRPC server and the manifest endpoint bound, channels to the catalog,
    steering and the encoder (its content keys, for licences) at ``deps.addresses`` open; the follower of account
    revocations runs once it starts."""
    await deps.store.migrate(SCHEMA)
    media = MediaLibrary(config.origin or deps.data_dir / "origin")
    keys = urltokens.keyring(deps.url_signing)
    catalog_address, steering_address = deps.address("catalog"), deps.address("steering")
    # the encoder holds the content keys; without its address (a playback run without one) licences are refused;
    # without the accounts service's, downloads are (their devices cannot be checked)
    encoder_address = deps.addresses.get("encoder")
    accounts_address = deps.addresses.get("accounts")
    credentials = ServiceToken(deps.tokens, "svc-playback")
    catalog_channel: grpc.aio.Channel = connect(catalog_address)
    steering_channel: grpc.aio.Channel = connect(steering_address)
    encoder_channel: grpc.aio.Channel | None = connect(encoder_address) if encoder_address else None
    accounts_channel: grpc.aio.Channel | None = connect(accounts_address) if accounts_address else None
    catalog = catalog_pb2_grpc.CatalogServiceStub(catalog_channel)
    licenser = Licenser(
        config.license,
        deps.store,
        catalog,
        content_keys_pb2_grpc.ContentKeyServiceStub(encoder_channel) if encoder_channel is not None else None,
        credentials,
        deps.rate_limiter,
    )
    clearkey = ClearKeyEndpoint(licenser, deps.tokens, deps.denylist, deps.geo, config.license, deps.rate_limiter)

    async def close_channels() -> None:
        await catalog_channel.close(None)
        await steering_channel.close(None)
        for channel in (encoder_channel, accounts_channel):
            if channel is not None:
                await channel.close(None)

    try:
        manifests = bind_manifests(deps.store, media, keys, config.http, deps.geo, clearkey)
    except BaseException:
        await close_channels()
        raise
    positions = open_positions(config, deps)
    servicer = PlaybackServicer(
        config,
        deps.store,
        deps.bus,
        media,
        catalog,
        steering_pb2_grpc.SteeringServiceStub(steering_channel),
        credentials,
        keys,
        deps.plans,
        lambda: manifests.public_url,
        deps.page_tokens,
        deps.geo,
        positions,
    )
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: playback_pb2_grpc.add_PlaybackServiceServicer_to_server(servicer, server),
    )
    downloads = DownloadServicer(
        deps.store,
        deps.bus,
        deps.plans,
        licenser,
        catalog,
        steering_pb2_grpc.SteeringServiceStub(steering_channel),
        accounts_pb2_grpc.AccountServiceStub(accounts_channel) if accounts_channel is not None else None,
        credentials,
        keys,
        lambda: manifests.public_url,
        deps.page_tokens,
        deps.geo,
        media,
    )
    download_binding = ServiceBinding(
        name=DOWNLOAD_SERVICE_NAME,
        add_to_server=lambda server: download_pb2_grpc.add_DownloadServiceServicer_to_server(downloads, server),
    )
    license_servicer = LicenseServicer(licenser, deps.geo)
    license_binding = ServiceBinding(
        name=LICENSE_SERVICE_NAME,
        add_to_server=lambda server: license_pb2_grpc.add_LicenseServiceServicer_to_server(license_servicer, server),
    )

    background: list[tuple[str, Background]] = [
        ("revocations", lambda: follow_account_revocations(servicer, downloads, deps.bus)),
        ("expiry", lambda: sweep_expired(servicer, config.expiry_sweep_interval)),
    ]
    if isinstance(positions, RedisPositions):
        writer = positions
        background.append(("positions-writer", lambda: writer.write_behind(f"playback-{new_id()}")))
    native = config.ingest == "native" and native_front_possible(positions, deps)
    # behind the native front, the grpc.aio server listens on a private loopback port
    server_config = config.server.model_copy(update={"host": "127.0.0.1", "port": 0}) if native else config.server
    front: IngestFront | None = None
    try:
        server, port = build_server(
            server_config, [binding, license_binding, download_binding], tokens=deps.tokens, denylist=deps.denylist
        )
        if native:
            front = open_front(config, deps, positions, port)
    except Exception:
        await manifests.stop()
        await close_channels()
        raise
    on_start: list[Callable[[], Awaitable[None]]] = []
    cleanups: list[Callable[[], Any]] = [close_channels]
    if front is not None:
        servicer.use_fast_path(front)
        on_start.append(front.serve)
        cleanups.append(front.stop)  # cleanups run after the grpc.aio server stopped, newest first
    return Service(
        "playback",
        grpc=server,
        grpc_port=front.port if front is not None else port,
        sites=[("http", manifests)],
        background=background,
        on_start=on_start,
        cleanups=cleanups,
    )
