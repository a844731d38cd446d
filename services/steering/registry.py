"""The edges steering knows: what they registered and what their heartbeats say. Kept in memory: an edge that
steering does not know (after a steering restart) gets NOT_FOUND on its next heartbeat and registers again.

With ``[state] kind = "redis"`` the records live on Redis (services/steering/registry_redis.py) and this registry is
each replica's local snapshot of them, which steering decisions read without a round trip."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


class Role(Enum):
    EDGE = 1
    SHIELD = 2
    ORIGIN = 3


class Health(Enum):
    HEALTHY = 1
    DEGRADED = 2  # demoted by player reports
    UNHEALTHY = 3  # missed heartbeats or reported unhealthy


@dataclass
class EdgeRecord:
    edge_id: str
    pathway_id: str
    base_uri: str
    zone: str
    role: Role
    capacity_bps: int
    countries: tuple[str, ...] = ()
    last_heartbeat: float = 0.0
    reported_healthy: bool = True
    active_connections: int = 0
    egress_bps: int = 0
    cache_used_bytes: int = 0
    cache_capacity_bytes: int = 0
    cached_titles: frozenset[str] = field(default_factory=frozenset)

    @property
    def utilisation(self) -> float:
        """Egress over capacity (0..1+)."""
        return self.egress_bps / self.capacity_bps if self.capacity_bps else 0.0


@dataclass
class Heartbeat:
    healthy: bool
    active_connections: int
    egress_bps: int
    capacity_bps: int
    cache_used_bytes: int
    cache_capacity_bytes: int
    cached_titles: frozenset[str]


class Registry:
    def __init__(self, heartbeat_timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.heartbeat_timeout = heartbeat_timeout
        self.clock = clock
        self._edges: dict[str, EdgeRecord] = {}
        self.version = 0  # bumped whenever the set of edges changes (the hash ring is rebuilt)

    def register(self, record: EdgeRecord) -> EdgeRecord:
        record.last_heartbeat = self.clock()
        if record.edge_id not in self._edges:
            self.version += 1
        self._edges[record.edge_id] = record
        return record

    def heartbeat(self, edge_id: str, beat: Heartbeat) -> EdgeRecord:
        """Raises KeyError for an edge that is not registered."""
        record = self._edges[edge_id]
        record.last_heartbeat = self.clock()
        record.reported_healthy = beat.healthy
        record.active_connections = beat.active_connections
        record.egress_bps = beat.egress_bps
        if beat.capacity_bps > 0:
            record.capacity_bps = beat.capacity_bps
        record.cache_used_bytes = beat.cache_used_bytes
        record.cache_capacity_bytes = beat.cache_capacity_bytes
        record.cached_titles = beat.cached_titles
        return record

    def deregister(self, edge_id: str) -> bool:
        if self._edges.pop(edge_id, None) is None:
            return False
        self.version += 1
        return True

    def replace(self, records: list[EdgeRecord]) -> None:
        """Swaps in a snapshot of every edge (kept as given, heartbeat times included)."""
        edges = {r.edge_id: r for r in records}
        if edges.keys() != self._edges.keys():
            self.version += 1
        self._edges = edges

    def get(self, edge_id: str) -> EdgeRecord | None:
        return self._edges.get(edge_id)

    def all(self) -> list[EdgeRecord]:
        return sorted(self._edges.values(), key=lambda e: e.edge_id)

    def alive(self, record: EdgeRecord) -> bool:
        """Heartbeating in time and saying it is healthy."""
        return record.reported_healthy and self.clock() - record.last_heartbeat <= self.heartbeat_timeout


class Edges(Protocol):
    """Where RegisterEdge, Heartbeat and DeregisterEdge write (decisions read the local ``Registry``)."""

    async def register(self, record: EdgeRecord) -> EdgeRecord: ...

    async def heartbeat(self, edge_id: str, beat: Heartbeat) -> EdgeRecord | None:
        """Raises KeyError for an edge that is not registered; None when this replica has no copy yet."""
        ...

    async def deregister(self, edge_id: str) -> bool: ...


class LocalEdges:
    """Where registrations, heartbeats and deregistrations go with ``[state] kind = "memory"``: this process's
    registry itself."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def register(self, record: EdgeRecord) -> EdgeRecord:
        return self.registry.register(record)

    async def heartbeat(self, edge_id: str, beat: Heartbeat) -> EdgeRecord:
        """Raises KeyError for an edge that is not registered."""
        return self.registry.heartbeat(edge_id, beat)

    async def deregister(self, edge_id: str) -> bool:
        return self.registry.deregister(edge_id)
