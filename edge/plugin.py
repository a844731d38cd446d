"""The all-in-one's edge tier: a shield in front of the local origin and two edges in front of the shield.

Edges verify signed URLs with the platform's ``url_signing`` keys; the shield, reached only by edges, does not.
A title re-encoded (``encoding.done``) is purged from every tier. Edges register with steering when it runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import REGISTRY
from pydantic import SecretStr

from edge.config import DataPlaneConfig, DirUpstream, EdgeNodeConfig, HttpUpstream
from edge.metrics import EdgeCollector
from edge.node import EdgeNode
from edge.settings import EdgeTierConfig
from edge.steering import SteeringReporter
from marquee.v1 import encoding_pb2
from services.common.bus.port import EventBus
from services.common.errors import InvalidArgument
from services.common.names import NamePattern
from services.common.topics import ENCODING_DONE
from services.platform.admin import admin_metadata
from services.platform.plugins import Endpoint, RunningService, ServicePlugin
from services.platform.runtime import Runtime

NAME = "edge"
CONSUMER_GROUP = "edge-purge"
TITLE = NamePattern("titles/{title}")
log = logging.getLogger("marquee.edge")


def tier_nodes(
    tier: EdgeTierConfig, *, data_dir: Path, origin: Path, token_keys: dict[str, SecretStr], ephemeral: bool
) -> tuple[EdgeNodeConfig, list[EdgeNodeConfig]]:
    """The shield's config and the edges' configs (their upstream is filled in once the shield has a port)."""
    shield = EdgeNodeConfig(
        role="shield",
        data_plane=DataPlaneConfig(
            name="shield",
            port=0 if ephemeral else tier.shield_port,
            upstream=DirUpstream(root=origin),
            memory_bytes=tier.shield_memory_bytes,
            disk_bytes=tier.shield_disk_bytes,
            disk_dir=data_dir / "edge" / "shield",
        ),
    )
    edges = [
        EdgeNodeConfig(
            zone=tier.zone,
            data_plane=DataPlaneConfig(
                name=name,
                port=0 if ephemeral or not tier.first_edge_port else tier.first_edge_port + i,
                upstream=HttpUpstream(base_url="http://127.0.0.1:1/v/"),  # replaced by the shield's address
                memory_bytes=tier.memory_bytes,
                disk_bytes=tier.disk_bytes,
                disk_dir=data_dir / "edge" / name,
                token_keys=token_keys,
                rate_limit_bytes_per_sec=tier.rate_limit_bytes_per_sec,
            ),
        )
        for i, name in enumerate(tier.edges)
    ]
    return shield, edges


async def purge_on_reencode(nodes: list[EdgeNode], bus: EventBus) -> None:
    """Purges a title from every tier when the encoder (re)publishes it, so no edge serves stale objects."""
    subscription = await bus.subscribe(ENCODING_DONE, CONSUMER_GROUP, "edge-1")
    try:
        async for message in subscription:
            try:
                event = encoding_pb2.EncodingDoneEvent.FromString(message.payload)
                title = TITLE.parse(event.title, "title")["title"]
            except (DecodeError, InvalidArgument) as exc:
                log.warning("dropping malformed %s message %s: %s", ENCODING_DONE, message.id, exc)
            else:
                purged = sum(node.purge(f"{title}/") for node in nodes)
                if purged:
                    log.info("purged %d objects of %s from the edges", purged, title)
            await subscription.ack(message)
    finally:
        with contextlib.suppress(Exception):
            await subscription.close()


async def start(runtime: Runtime) -> RunningService:
    tier = runtime.config.service(NAME, EdgeTierConfig)
    if not tier.enabled:
        return RunningService(name=NAME, endpoints=[], stop=_nothing)
    data_dir = runtime.config.data_dir
    keys = dict(runtime.config.url_signing.keys)
    origin = tier.origin or data_dir / "origin"
    shield_config, edge_configs = tier_nodes(
        tier, data_dir=data_dir, origin=origin, token_keys=keys, ephemeral=runtime.ephemeral_ports
    )
    nodes: list[EdgeNode] = []
    try:
        shield = await asyncio.to_thread(EdgeNode, shield_config)
        nodes.append(shield)
        upstream = HttpUpstream(base_url=shield.base_url)
        for config in edge_configs:
            dp = config.data_plane.model_copy(update={"upstream": upstream})
            nodes.append(await asyncio.to_thread(EdgeNode, config.model_copy(update={"data_plane": dp})))
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
        channel = grpc.aio.insecure_channel(steering)

        def credentials() -> tuple[tuple[str, str], ...]:
            return admin_metadata(runtime.config, ttl=600)

        reporters = [
            SteeringReporter(n, channel, interval=tier.heartbeat_interval, credentials=credentials) for n in nodes
        ]
        tasks += [asyncio.create_task(r.run(), name=f"edge-heartbeat-{r.node.name}") for r in reporters]

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if channel is not None:
            await channel.close(None)
        REGISTRY.unregister(collector)
        for node in reversed(nodes):
            await asyncio.to_thread(node.stop)

    endpoints = [Endpoint(n.name, n.base_url, "http") for n in nodes]
    return RunningService(name=NAME, endpoints=endpoints, stop=stop)


async def _nothing() -> None:
    return None


PLUGIN = ServicePlugin(name=NAME, start=start, order=18, default_port=8081)
