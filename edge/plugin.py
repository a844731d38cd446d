"""The all-in-one's edge tier: a shield in front of the local origin and two edges in front of the shield.

Edges verify players' signed URLs with the platform's ``url_signing`` keys and fill from the shield with a fill
credential (``edge_fill`` keys) that the shield requires; the shield serves players only when
``shield_serves_players`` is on (then with the same signed URLs as the edges). A title re-encoded
(``encoding.done``) is purged from every tier. Every node registers with steering when it runs, and follows
steering's revocation feed: the signed URLs of ended playback sessions are refused at once."""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client import REGISTRY
from pydantic import SecretStr

from edge.config import DataPlaneConfig, DirUpstream, EdgeGeoConfig, EdgeNodeConfig, HttpUpstream
from edge.metrics import EdgeCollector
from edge.node import EdgeNode
from edge.revocations import RevocationFollower
from edge.settings import EdgeTierConfig
from edge.steering import SteeringReporter
from marquee.v1 import encoding_pb2
from services.common.auth import ServiceToken
from services.common.bus.consume import follow_topic
from services.common.bus.port import EventBus
from services.common.config import PlatformConfig
from services.common.names import NamePattern
from services.common.targets import channel_target
from services.common.tasks import cancel_all
from services.common.topics import ENCODING_DONE
from services.platform.plugins import Endpoint, RunningService, ServicePlugin
from services.platform.runtime import Runtime

NAME = "edge"
CONSUMER_GROUP = "edge-purge"
TITLE = NamePattern("titles/{title}")
log = logging.getLogger("marquee.edge")


@dataclass(frozen=True)
class TierKeys:
    """Players' signed URL keys, the fill credential keys of edges and their shield, and where clients are (for
    tokens bound to licensed regions)."""

    token_keys: dict[str, SecretStr]
    fill_keys: dict[str, SecretStr]
    fill_signing_kid: str
    geo: EdgeGeoConfig

    @classmethod
    def of(cls, config: PlatformConfig, tier: EdgeTierConfig) -> TierKeys:
        fill = config.edge_fill
        geo = EdgeGeoConfig.of(config.geo, tier.trusted_proxies)
        return cls(dict(config.url_signing.keys), dict(fill.keys), fill.signing_kid, geo)


def shield_config(
    tier: EdgeTierConfig, *, data_dir: Path, origin: Path, keys: TierKeys, ephemeral: bool
) -> EdgeNodeConfig:
    """The shield: reads the origin directory, takes edges' fills, and players' signed URLs only if allowed."""
    return EdgeNodeConfig(
        role="shield",
        data_plane=DataPlaneConfig(
            name="shield",
            port=0 if ephemeral else tier.shield_port,
            upstream=DirUpstream(root=origin),
            memory_bytes=tier.shield_memory_bytes,
            disk_bytes=tier.shield_disk_bytes,
            disk_dir=data_dir / "edge" / "shield",
            token_keys=keys.token_keys if tier.shield_serves_players else {},
            fill_keys=keys.fill_keys,
            geo=keys.geo,
        ),
    )


def edge_configs(
    tier: EdgeTierConfig, *, data_dir: Path, shield_url: str, keys: TierKeys, ephemeral: bool, key_uri_base: str = ""
) -> list[EdgeNodeConfig]:
    """The edges, in front of the shield at ``shield_url``: verifying signed URLs, filling with a credential; naming
    the raw keys of protected titles at ``key_uri_base`` (playback's manifest URL) unless the tier sets its own."""
    return [
        EdgeNodeConfig(
            zone=tier.zone,
            data_plane=DataPlaneConfig(
                name=name,
                host=tier.host(i),
                port=0 if ephemeral or not tier.first_edge_port else tier.first_edge_port + i,
                upstream=HttpUpstream(base_url=shield_url),
                memory_bytes=tier.memory_bytes,
                disk_bytes=tier.disk_bytes,
                disk_dir=data_dir / "edge" / name,
                token_keys=keys.token_keys,
                fill_keys=keys.fill_keys,
                fill_signing_kid=keys.fill_signing_kid,
                geo=keys.geo,
                rate_limit_bytes_per_sec=tier.rate_limit_bytes_per_sec,
                key_uri_base=tier.key_uri_base or key_uri_base,
            ),
        )
        for i, name in enumerate(tier.edges)
    ]


def purge_group(nodes: list[EdgeNode]) -> str:
    """The consumer group of a process's edges: every process purges its own caches, so each needs every event;
    named after its edges, so a restarted process takes up its group where it was."""
    names = ",".join(sorted(node.name for node in nodes))
    return f"{CONSUMER_GROUP}-{zlib.crc32(names.encode()):08x}"


async def purge_on_reencode(nodes: list[EdgeNode], bus: EventBus) -> None:
    """Purges a title from every tier when the encoder (re)publishes it, so no edge serves stale objects."""

    async def purge(event: encoding_pb2.EncodingDoneEvent) -> None:
        title = TITLE.parse(event.title, "title")["title"]
        purged = sum(node.purge(f"{title}/") for node in nodes)
        if purged:
            log.info("purged %d objects of %s from the edges", purged, title)

    await follow_topic(bus, ENCODING_DONE, purge_group(nodes), "edges", encoding_pb2.EncodingDoneEvent, purge)


async def start(runtime: Runtime) -> RunningService:
    tier = runtime.config.service(NAME, EdgeTierConfig)
    if not tier.enabled:
        return RunningService(name=NAME, endpoints=[], stop=_nothing)
    data_dir = runtime.config.data_dir
    keys = await asyncio.to_thread(TierKeys.of, runtime.config, tier)  # reads the GeoIP database
    origin = tier.origin or data_dir / "origin"
    ephemeral = runtime.ephemeral_ports
    nodes: list[EdgeNode] = []
    try:
        shield = await asyncio.to_thread(
            EdgeNode, shield_config(tier, data_dir=data_dir, origin=origin, keys=keys, ephemeral=ephemeral)
        )
        nodes.append(shield)
        configs = edge_configs(
            tier,
            data_dir=data_dir,
            shield_url=shield.base_url,
            keys=keys,
            ephemeral=ephemeral,
            key_uri_base=runtime.http_urls.get("playback", ""),  # started before the edges when it runs here
        )
        for config in configs:
            nodes.append(await asyncio.to_thread(EdgeNode, config))
    except Exception:
        for node in nodes:
            node.stop()
        raise
    collector = EdgeCollector(lambda: nodes)
    REGISTRY.register(collector)
    tasks = [asyncio.create_task(purge_on_reencode(nodes, runtime.deps.bus), name="edge-purge")]
    channel: grpc.aio.Channel | None = None
    steering = runtime.addresses.get("steering")
    if steering:
        target, balanced = channel_target(steering)
        channel = grpc.aio.insecure_channel(target, options=balanced)

        credentials = ServiceToken(runtime.deps.tokens, "svc-edge")
        reporters = [
            SteeringReporter(n, channel, interval=tier.heartbeat_interval, credentials=credentials) for n in nodes
        ]
        tasks += [asyncio.create_task(r.run(), name=f"edge-heartbeat-{r.node.name}") for r in reporters]
        follower = RevocationFollower(lambda: nodes, channel, credentials=credentials)
        tasks.append(asyncio.create_task(follower.run(), name="edge-revocations"))

    async def stop() -> None:
        await cancel_all(tasks)
        if channel is not None:
            await channel.close(None)
        REGISTRY.unregister(collector)
        for node in reversed(nodes):
            await asyncio.to_thread(node.stop)

    endpoints = [Endpoint(n.name, n.base_url, "http") for n in nodes]
    return RunningService(name=NAME, endpoints=endpoints, stop=stop)


async def _nothing() -> None:
    return None


# after playback, whose manifest URL the edges name for protected titles' keys; before the gateway
PLUGIN = ServicePlugin(name=NAME, start=start, order=26, default_port=8081)
