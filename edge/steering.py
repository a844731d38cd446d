"""Registration and heartbeats to the steering service: health, connections, egress, capacity, cache use and a
summary of the cached titles, every interval the steering service asks for."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import grpc

from edge.node import EdgeNode, EgressMeter
from marquee.v1 import steering_pb2 as pb
from marquee.v1.steering_pb2_grpc import SteeringServiceStub

log = logging.getLogger("marquee.edge.steering")

MAX_CACHED_TITLES = 10_000  # the HeartbeatRequest contract
RPC_TIMEOUT = 5.0  # seconds per call to steering
ROLES = {"edge": pb.EDGE_ROLE_EDGE, "shield": pb.EDGE_ROLE_SHIELD}


class SteeringReporter:
    """Keeps one edge registered with steering. ``run`` registers (retrying with backoff), then heartbeats; an
    edge steering has forgotten (NOT_FOUND, e.g. after a steering restart) registers again."""

    def __init__(
        self,
        node: EdgeNode,
        channel: grpc.aio.Channel,
        *,
        interval: float = 5.0,
        credentials: Callable[[], Sequence[tuple[str, str]]] = tuple,
    ) -> None:
        self.node = node
        self.credentials = credentials  # call metadata per RPC (a service token, minted fresh)
        self.stub = SteeringServiceStub(channel)
        self.interval = interval
        self.resource: str | None = None
        self._meter = EgressMeter()

    def _edge(self) -> pb.Edge:
        c = self.node.config
        return pb.Edge(
            pathway_id=self.node.pathway_id,
            base_uri=self.node.base_url,
            zone=c.zone,
            role=ROLES[c.role],
            capacity_bps=c.capacity_bps,
            countries=list(c.countries),
        )

    async def register(self) -> str:
        request = pb.RegisterEdgeRequest(edge=self._edge(), edge_id=self.node.name)
        response = await self.stub.RegisterEdge(request, metadata=self.credentials(), timeout=RPC_TIMEOUT)
        self.resource = response.edge.name
        if response.HasField("heartbeat_interval"):
            self.interval = response.heartbeat_interval.ToTimedelta().total_seconds() or self.interval
        return self.resource

    def heartbeat_request(self) -> pb.HeartbeatRequest:
        usage = self.node.usage()
        titles = sorted(usage.cached_titles, key=lambda t: -usage.cached_titles[t])[:MAX_CACHED_TITLES]
        return pb.HeartbeatRequest(
            edge=self.resource or "",
            healthy=self.node.running,
            active_connections=usage.active_connections,
            egress_bps=self._meter.rate(usage.bytes_sent),
            capacity_bps=self.node.config.capacity_bps,
            cache_used_bytes=usage.cache_used_bytes,
            cache_capacity_bytes=usage.cache_capacity_bytes,
            cached_titles=titles,
        )

    async def beat(self) -> None:
        response = await self.stub.Heartbeat(self.heartbeat_request(), metadata=self.credentials(), timeout=RPC_TIMEOUT)
        if response.HasField("heartbeat_interval"):
            self.interval = response.heartbeat_interval.ToTimedelta().total_seconds() or self.interval

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                if self.resource is None:
                    await self.register()
                    log.info("edge registered with steering", extra={"edge": self.resource})
                await self.beat()
                backoff = 0.5
                await asyncio.sleep(self.interval)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    self.resource = None
                log.warning("steering unreachable: %s", exc.details(), extra={"edge": self.node.name})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.interval)

    async def deregister(self) -> None:
        if self.resource is not None:
            await self.stub.DeregisterEdge(
                pb.DeregisterEdgeRequest(name=self.resource), metadata=self.credentials(), timeout=RPC_TIMEOUT
            )
            self.resource = None
