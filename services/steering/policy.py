"""The steering policy: a pure function of the state, so it can be tested and reasoned about.

For one session and title:

1. Candidates: edges (not shields) that heartbeat in time, say they are healthy, and have capacity headroom
   (egress below ``max_utilisation`` of capacity). Those in the client's coverage zone's edge groups
   (ZONE_MATCH); if none, those serving the client's country (COUNTRY_FALLBACK); if none, every candidate.
2. Pathways players reported trouble on (this session's own reports, or enough evidence from other sessions and
   accounts in the client's zone lately) go last among the edges (HEALTH_DEMOTED): players can reorder edges,
   never remove one; only the edge's own heartbeats do.
3. Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, 2018) on the title: the ring order
   from the title's hash keeps a title on the same edge (CACHE_AFFINITY) until that edge holds more than
   ``ceil(c * sessions / edges)`` sessions, when the title spills to the next edge on the ring (LOAD_SPILLOVER).
   A session keeps the edge it was given while that edge stays valid (no needless mid-stream switches).
4. Shields, then origins, as last resorts (SHIELD_FALLBACK, ORIGIN_FALLBACK), only when ``shield_fallback`` is
   configured: by default players never see them (a shield serves edges' fills, not players).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from services.steering.registry import EdgeRecord, Role


class Reason(Enum):
    """Mirrors marquee.v1.SteeringReason."""

    ZONE_MATCH = 1
    CACHE_AFFINITY = 2
    LOAD_SPILLOVER = 3
    HEALTH_DEMOTED = 4
    COUNTRY_FALLBACK = 5
    SHIELD_FALLBACK = 6
    ORIGIN_FALLBACK = 7


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class Ring:
    """A consistent hash ring of edge ids with virtual nodes."""

    def __init__(self, ids: Iterable[str], vnodes: int = 160) -> None:
        points = sorted((stable_hash(f"{edge_id}#{i}"), edge_id) for edge_id in set(ids) for i in range(vnodes))
        self._hashes = [h for h, _ in points]
        self._ids = [e for _, e in points]
        self.size = len(set(self._ids))

    def walk(self, key: str) -> list[str]:
        """Every edge id once, in ring order from ``key``'s position."""
        if not self._ids:
            return []
        start = bisect.bisect_left(self._hashes, stable_hash(key))
        seen: dict[str, None] = {}
        n = len(self._ids)
        for i in range(n):
            seen.setdefault(self._ids[(start + i) % n], None)
            if len(seen) == self.size:
                break
        return list(seen)


@dataclass(frozen=True)
class Pathway:
    pathway_id: str
    base_uri: str
    reason: Reason
    edge_id: str


@dataclass(frozen=True)
class SteeringInput:
    title_id: str
    zone_groups: tuple[str, ...] | None  # None: no coverage zone matched the client
    country: str
    sticky_edge: str | None  # the edge this session was given last time
    demoted: frozenset[str]  # pathway ids demoted for this session or globally


@dataclass(frozen=True)
class PolicyConfig:
    bound_factor: float = 1.25  # c in ceil(c * sessions / edges)
    max_utilisation: float = 0.95  # egress / capacity at which an edge takes no new sessions
    shield_fallback: bool = False  # list shields and origins after the edges


def order(
    request: SteeringInput,
    edges: list[EdgeRecord],
    alive: Callable[[EdgeRecord], bool],
    ring: Ring,
    assigned: Mapping[str, int],
    config: PolicyConfig = PolicyConfig(),
) -> list[Pathway]:
    """The pathways for one session, best first. ``assigned`` counts sessions per edge, not this one."""
    usable = [e for e in edges if e.role is Role.EDGE and alive(e) and e.utilisation < config.max_utilisation]
    candidates: list[EdgeRecord] = []
    base = Reason.ZONE_MATCH
    if request.zone_groups is not None:
        candidates = [e for e in usable if e.zone in request.zone_groups]
    if not candidates:
        base = Reason.COUNTRY_FALLBACK
        candidates = [e for e in usable if request.country and request.country in e.countries] or usable
    by_id = {e.edge_id: e for e in candidates}
    walk = [edge_id for edge_id in ring.walk(request.title_id) if edge_id in by_id]
    good = [i for i in walk if by_id[i].pathway_id not in request.demoted]
    bad = [i for i in walk if by_id[i].pathway_id in request.demoted]
    result: list[Pathway] = []
    if good:
        total = sum(assigned.get(i, 0) for i in good) + 1
        bound = math.ceil(config.bound_factor * total / len(good))

        def fits(edge_id: str) -> bool:
            return assigned.get(edge_id, 0) + 1 <= bound

        if request.sticky_edge in good and fits(request.sticky_edge):
            first = request.sticky_edge
        else:
            first = next((i for i in good if fits(i)), good[0])
        reason = Reason.CACHE_AFFINITY if first == good[0] else Reason.LOAD_SPILLOVER
        result.append(Pathway(by_id[first].pathway_id, by_id[first].base_uri, reason, first))
        result += [Pathway(by_id[i].pathway_id, by_id[i].base_uri, base, i) for i in good if i != first]
    result += [Pathway(by_id[i].pathway_id, by_id[i].base_uri, Reason.HEALTH_DEMOTED, i) for i in bad]
    if not config.shield_fallback:
        return result
    for role, reason in ((Role.SHIELD, Reason.SHIELD_FALLBACK), (Role.ORIGIN, Reason.ORIGIN_FALLBACK)):
        result += [Pathway(e.pathway_id, e.base_uri, reason, e.edge_id) for e in edges if e.role is role and alive(e)]
    return result
