"""Steering state and decisions: edges, sessions, player problem reports; the answers for gRPC and HTTP."""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge

from services.steering.config import SteeringConfig
from services.steering.evidence import EvidenceRules, PathwayEvidence, Report
from services.steering.policy import Pathway, PolicyConfig, Reason, Ring, SteeringInput, order
from services.steering.registry import EdgeRecord, Registry, Role
from services.steering.zones import CoverageZones, IpAddress

DECISIONS = PromCounter(
    "marquee_steering_decisions_total", "Steering answers, by the reason for the first pathway.", ["reason"]
)
PATHWAY_REASONS = PromCounter("marquee_steering_pathways_total", "Pathways listed in answers, by reason.", ["reason"])
PROBLEMS = PromCounter("marquee_steering_problem_reports_total", "Player problem reports, by pathway.", ["pathway"])
SESSIONS = Gauge("marquee_steering_sessions", "Sessions being steered.")
_DECISION = {r: DECISIONS.labels(reason=r.name) for r in Reason}  # bound once: labels() is slow per call
_PATHWAY = {r: PATHWAY_REASONS.labels(reason=r.name) for r in Reason}

SESSION_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
MAX_THROUGHPUT_BPS = 10**12  # 1 Tbit/s: anything above is not a measurement


class SteeringError(Exception):
    """Base of the errors a request can cause; the gRPC and HTTP layers map each to a status."""


class BadInput(SteeringError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


class UnknownSession(SteeringError):
    pass


class SessionEnded(SteeringError):
    pass


class NoPathway(SteeringError):
    """No edge, shield or origin can serve this session now."""


class Overloaded(SteeringError):
    pass


def parse_address(text: str) -> IpAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise BadInput("client_address", f"client_address {text[:64]!r} is not an IPv4 or IPv6 address") from None


def check_throughput(value: float | None, field_name: str) -> float | None:
    if value is None:
        return None
    if math.isnan(value) or value < 0 or value > MAX_THROUGHPUT_BPS:
        raise BadInput(field_name, f"{field_name} must be between 0 and {MAX_THROUGHPUT_BPS} bits/s")
    return value


@dataclass
class Session:
    session_id: str
    title_id: str
    client: IpAddress
    country: str
    zone_groups: tuple[str, ...] | None
    zone: str = ""  # the coverage zone's name ("" when none matched): problem evidence is pooled per zone
    account: str = ""  # the account it plays for: problem evidence counts accounts, not only sessions
    known_pathways: dict[str, str] = field(default_factory=dict)  # id -> base URI, as the session's manifests list them
    edge_id: str | None = None
    demoted_until: dict[str, float] = field(default_factory=dict)
    last_seen: float = 0.0
    shared_at: float | None = None  # when this replica last wrote it to the session directory (None: not yet)
    shared_pathways: bool = False  # whether that write carried its known pathways


@dataclass(frozen=True)
class Decision:
    session: Session
    pathways: list[Pathway]
    ttl: int


def check_session_id(session_id: str) -> str:
    """The session id, once it is one steering takes (before any key or lookup is built from it)."""
    if not SESSION_ID.match(session_id):
        raise BadInput("session", "session id must be 1-128 characters of [A-Za-z0-9._~-]")
    return session_id


class Steering:
    def __init__(
        self,
        config: SteeringConfig,
        zones: CoverageZones,
        *,
        clock: Callable[[], float] = time.monotonic,
        shared_sessions: bool = False,
    ) -> None:
        """``shared_sessions``: sessions live in a directory every replica shares (services/steering/sessions.py),
        so ``sessions`` is a cache: a session idle here is dropped from it, not ended (another replica may be
        steering it; the directory tells when it went idle everywhere)."""
        self.config = config
        self.shared_sessions = shared_sessions
        self.zones = zones
        self.clock = clock
        self.registry = Registry(config.heartbeat_timeout, clock)
        self.policy = PolicyConfig(
            bound_factor=config.bound_factor,
            max_utilisation=config.max_utilisation,
            shield_fallback=config.shield_fallback,
        )
        self.sessions: OrderedDict[str, Session] = OrderedDict()  # least recently steered first
        self.ended: OrderedDict[str, float] = OrderedDict()
        self.assigned: Counter[str] = Counter()
        self.evidence = PathwayEvidence(
            EvidenceRules(
                window=config.problem_window,
                threshold=config.problem_threshold,
                session_cap=config.problem_session_cap,
                min_sessions=config.problem_min_sessions,
                min_accounts=config.problem_min_accounts,
                max_reports=config.max_problem_reports,
            )
        )
        self._ring = Ring([])
        self._ring_version = -1

    # --- sessions -------------------------------------------------------------------------------------------

    def _expire(self) -> None:
        now = self.clock()
        while self.sessions:
            oldest = next(iter(self.sessions.values()))
            if now - oldest.last_seen <= self.config.session_idle_timeout:
                break
            if self.shared_sessions:
                self._drop(oldest.session_id)
            else:
                self.end(oldest.session_id)
        while self.ended and now - next(iter(self.ended.values())) > self.config.ended_session_memory:
            self.ended.popitem(last=False)
        SESSIONS.set(len(self.sessions))

    def _drop(self, session_id: str) -> Session | None:
        s = self.sessions.pop(session_id, None)
        if s is not None and s.edge_id is not None:
            self.assigned[s.edge_id] -= 1
        return s

    def end(self, session_id: str) -> bool:
        """Ends a session (playback stopped it, or it went idle); later requests for it get 410, whether steering
        had seen it or not. True when it was being steered."""
        s = self._drop(session_id)
        self.ended[session_id] = self.clock()
        self.ended.move_to_end(session_id)
        while len(self.ended) > self.config.max_sessions:
            self.ended.popitem(last=False)
        return s is not None

    def holds(self, session_id: str) -> bool:
        """Whether this replica knows the session (steers it, or knows it ended) without asking the directory."""
        self._expire()  # a copy gone idle here is not held: the directory knows whether it lives on elsewhere
        return session_id in self.sessions or session_id in self.ended

    def _session(
        self, session_id: str, title_id: str | None, client: str | None, country: str, account: str = ""
    ) -> Session:
        check_session_id(session_id)
        if session_id in self.ended:
            raise SessionEnded(f"session {session_id} has ended")
        s = self.sessions.get(session_id)
        if s is not None:
            if title_id is not None and title_id != s.title_id:
                raise BadInput("title", f"session {session_id} plays {s.title_id}, not {title_id}")
            return s
        if title_id is None or client is None:
            raise UnknownSession(f"no steering session {session_id}")
        return self._start(session_id, title_id, client, country, account)

    def _start(self, session_id: str, title_id: str, client: str, country: str, account: str) -> Session:
        if len(self.sessions) >= self.config.max_sessions:
            raise Overloaded(f"steering holds its limit of {self.config.max_sessions} sessions")
        if country and not COUNTRY.match(country):
            raise BadInput("country", f"country {country[:8]!r} is not an ISO 3166-1 alpha-2 code")
        address = parse_address(client)
        zone = self.zones.match(address)
        s = Session(
            session_id,
            title_id,
            address,
            country,
            zone.edge_groups if zone else None,
            zone=zone.name if zone else "",
            account=account,
        )
        s.last_seen = self.clock()  # idle from now: a first call that finds no pathway must not end it at the next
        self.sessions[session_id] = s
        return s

    def adopt(
        self,
        session_id: str,
        *,
        title_id: str,
        client: str,
        country: str,
        account: str,
        known_pathways: dict[str, str],
    ) -> Session:
        """Takes in a session another replica started (its facts from the session directory): its zone is matched
        here again, as at its start; its soft state (demotions, assigned edge) starts afresh."""
        check_session_id(session_id)
        if session_id in self.ended:
            raise SessionEnded(f"session {session_id} has ended")
        held = self.sessions.get(session_id)
        if held is not None:
            return held
        s = self._start(session_id, title_id, client, country, account)
        s.known_pathways = dict(known_pathways)
        return s

    # --- decisions ------------------------------------------------------------------------------------------

    def _ring_now(self) -> Ring:
        if self._ring_version != self.registry.version:
            self._ring = Ring(e.edge_id for e in self.registry.all() if e.role is Role.EDGE)
            self._ring_version = self.registry.version
        return self._ring

    def demoted_pathways(self, now: float) -> frozenset[str]:
        """Pathways demoted in some zone by enough evidence from players (see services/steering/evidence.py)."""
        return self.evidence.demoted_anywhere(now)

    def steer(
        self,
        session_id: str,
        *,
        title_id: str | None = None,
        client: str | None = None,
        country: str = "",
        account: str = "",
        current_pathway: str = "",
        throughput_bps: float | None = None,
        throughput_field: str = "throughput_bps",
    ) -> Decision:
        """The ordered pathways for a session; the first call (with title and client) starts it."""
        self._expire()
        throughput = check_throughput(throughput_bps, throughput_field)
        s = self._session(session_id, title_id, client, country, account)
        now = self.clock()
        if current_pathway and throughput is not None and throughput < self.config.min_throughput_bps:
            s.demoted_until[current_pathway] = now + self.config.session_demotion
        demoted = {p for p, until in s.demoted_until.items() if until > now} | self.evidence.demoted(s.zone, now)
        if s.edge_id is not None:
            self.assigned[s.edge_id] -= 1
        request = SteeringInput(s.title_id, s.zone_groups, s.country, s.edge_id, frozenset(demoted))
        pathways = order(
            request, self.registry.all(), self.registry.alive, self._ring_now(), self.assigned, self.policy
        )
        if not pathways:
            s.edge_id = None
            raise NoPathway("no edge, shield or origin is available")
        first = pathways[0]
        edge = self.registry.get(first.edge_id)
        s.edge_id = first.edge_id if edge is not None and edge.role is Role.EDGE else None
        if s.edge_id is not None:
            self.assigned[s.edge_id] += 1
        if not s.known_pathways:
            s.known_pathways = {p.pathway_id: p.base_uri for p in pathways}
        s.last_seen = now
        self.sessions.move_to_end(session_id)
        _DECISION[first.reason].inc()
        for p in pathways:
            _PATHWAY[p.reason].inc()
        return Decision(s, pathways, self.config.ttl_seconds)

    def report_problem(self, session_id: str, pathway_id: str, count: int) -> tuple[str, Report]:
        """A player's stalls or errors on a pathway: demoted for that session now; evidence for its zone, which
        demotes the pathway there only once enough sessions and accounts agree (services/steering/evidence.py).
        Returns the zone and the report (which shared evidence on Redis then publishes)."""
        if not 1 <= count <= 1000:
            raise BadInput("count", "count must be between 1 and 1000")
        if not pathway_id or len(pathway_id) > 64:
            raise BadInput("pathway_id", "pathway_id is required (at most 64 characters)")
        self._expire()
        s = self._session(session_id, None, None, "")
        if pathway_id not in s.known_pathways and pathway_id not in {e.pathway_id for e in self.registry.all()}:
            raise BadInput("pathway_id", f"pathway {pathway_id!r} is not one this session was steered to")
        now = self.clock()
        s.demoted_until[pathway_id] = now + self.config.session_demotion
        # a session without an account (a caller that did not say) stands for an account of its own
        report = Report(now, session_id, s.account or f"session:{session_id}", count)
        self.evidence.add(s.zone, pathway_id, report)
        PROBLEMS.labels(pathway=pathway_id).inc(count)
        return s.zone, report

    # --- manifests ------------------------------------------------------------------------------------------

    def _clones(self, decision: Decision) -> list[dict[str, object]]:
        """Pathways that joined after the session's manifests were made, as clones of one they list.

        A clone's URI-REPLACEMENT HOST replaces only the hostname of the base pathway's URIs (players keep the
        scheme, port and path), so an edge is offered as a clone only of a listed pathway whose URIs differ from
        its own by the hostname alone; others serve new sessions."""
        clones: list[dict[str, object]] = []
        for p in decision.pathways:
            if p.pathway_id in decision.session.known_pathways:
                continue
            new = urlsplit(p.base_uri)
            for base_id, base_uri in decision.session.known_pathways.items():
                old = urlsplit(base_uri)
                if (old.scheme, old.port, old.path) == (new.scheme, new.port, new.path) and new.hostname:
                    clones.append({"BASE-ID": base_id, "ID": p.pathway_id, "URI-REPLACEMENT": {"HOST": new.hostname}})
                    break
        return clones

    def hls_manifest(self, decision: Decision, reload_uri: str) -> dict[str, object]:
        """HLS content steering manifest (draft-pantos-hls-rfc8216bis §7.1), as hls.js reads it."""
        doc: dict[str, object] = {
            "VERSION": 1,
            "TTL": decision.ttl,
            "RELOAD-URI": reload_uri,
            "PATHWAY-PRIORITY": [p.pathway_id for p in decision.pathways],
        }
        if clones := self._clones(decision):
            doc["PATHWAY-CLONES"] = clones
        return doc

    def dash_manifest(self, decision: Decision, reload_uri: str) -> dict[str, object]:
        """DASH content steering manifest: SERVICE-LOCATION-PRIORITY as DASH-IF CTS specifies it, and the same
        list as PATHWAY-PRIORITY, which is the key dash.js (5.x) and Shaka Player read for DASH too."""
        order = [p.pathway_id for p in decision.pathways]
        doc: dict[str, object] = {
            "VERSION": 1,
            "TTL": decision.ttl,
            "RELOAD-URI": reload_uri,
            "SERVICE-LOCATION-PRIORITY": order,
            "PATHWAY-PRIORITY": order,
        }
        if clones := self._clones(decision):
            doc["PATHWAY-CLONES"] = clones  # dash.js clones BaseURLs by serviceLocation
        return doc

    def edges(self) -> list[EdgeRecord]:
        return self.registry.all()
