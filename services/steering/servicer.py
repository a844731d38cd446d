"""SteeringService over gRPC. Every RPC is for other services and edges (admin/service credentials)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from marquee.v1 import steering_pb2 as pb
from marquee.v1 import steering_pb2_grpc
from services.common.auth import require_admin
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from services.common.names import NamePattern
from services.common.paging import PageTokens, page_size, query_fingerprint
from services.steering.evidence import Report
from services.steering.policy import Reason
from services.steering.registry import EdgeRecord, Edges, Heartbeat, LocalEdges, Role
from services.steering.revocations import RevocationFeed
from services.steering.sessions import SharedSessions
from services.steering.steerer import (
    BadInput,
    NoPathway,
    Overloaded,
    SessionEnded,
    Steering,
    SteeringError,
    UnknownSession,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SteeringService"].full_name
EDGE = NamePattern("edges/{edge}")
ACCOUNT = NamePattern("accounts/{account}")
SESSION = NamePattern("playbackSessions/{session}")
TITLE = NamePattern("titles/{title}")
ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
ZONE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
MAX_COUNTRIES = 300
MAX_CACHED_TITLES = 10_000
MAX_REVOCATIONS_PER_MESSAGE = 1000
ROLES = {pb.EDGE_ROLE_EDGE: Role.EDGE, pb.EDGE_ROLE_SHIELD: Role.SHIELD, pb.EDGE_ROLE_ORIGIN: Role.ORIGIN}
ROLE_PB = {v: k for k, v in ROLES.items()}
REASON_PB = {r: pb.SteeringReason.Value(f"STEERING_REASON_{r.name}") for r in Reason}
Context = grpc.aio.ServicerContext[Any, Any]


def _raise(exc: SteeringError) -> None:
    if isinstance(exc, BadInput):
        raise InvalidArgument(str(exc), field_name=exc.field_name) from exc
    if isinstance(exc, UnknownSession):
        raise NotFound(str(exc), reason="SESSION_NOT_FOUND") from exc
    if isinstance(exc, SessionEnded):
        raise FailedPrecondition(str(exc), reason="SESSION_ENDED") from exc
    if isinstance(exc, Overloaded):
        raise ResourceExhausted(str(exc)) from exc
    if isinstance(exc, NoPathway):
        raise Unavailable(str(exc), reason="NO_PATHWAY") from exc
    raise exc


def _check_edge(edge: pb.Edge, edge_id: str) -> EdgeRecord:
    def bad(field: str, message: str) -> InvalidArgument:
        return InvalidArgument(message, field_name=field)

    if not ID.match(edge_id):
        raise bad("edge_id", "edge_id must be 1-32 characters of [A-Za-z0-9_-]")
    pathway = edge.pathway_id or edge_id
    if not ID.match(pathway):
        raise bad("edge.pathway_id", "pathway_id must be 1-32 characters of [A-Za-z0-9_-]")
    uri = urlsplit(edge.base_uri)
    if uri.scheme not in ("http", "https") or not uri.netloc or not edge.base_uri.endswith("/"):
        raise bad("edge.base_uri", "base_uri must be an absolute http(s) URI ending with '/'")
    if not ZONE.match(edge.zone):
        raise bad("edge.zone", "zone must be 1-64 characters of [A-Za-z0-9_.-]")
    if edge.role not in ROLES:
        raise bad("edge.role", "role must be EDGE_ROLE_EDGE, EDGE_ROLE_SHIELD or EDGE_ROLE_ORIGIN")
    if edge.capacity_bps <= 0:
        raise bad("edge.capacity_bps", "capacity_bps must be positive")
    if len(edge.countries) > MAX_COUNTRIES or not all(COUNTRY.match(c) for c in edge.countries):
        raise bad("edge.countries", f"countries must be at most {MAX_COUNTRIES} ISO 3166-1 alpha-2 codes")
    return EdgeRecord(
        edge_id=edge_id,
        pathway_id=pathway,
        base_uri=edge.base_uri,
        zone=edge.zone,
        role=ROLES[edge.role],
        capacity_bps=edge.capacity_bps,
        countries=tuple(edge.countries),
    )


class SteeringServicer(steering_pb2_grpc.SteeringServiceServicer):
    def __init__(
        self,
        sessions: SharedSessions,
        page_tokens: PageTokens,
        reload_uri: Callable[[str, str], str],
        revocations: RevocationFeed,
        *,
        edges: Edges | None = None,
        share_report: Callable[[str, str, Report], Awaitable[None]] | None = None,
    ) -> None:
        self.sessions = sessions  # steering's sessions, local and in the directory every replica shares
        self.steering: Steering = sessions.steering
        self.page_tokens = page_tokens
        self.reload_uri = reload_uri  # ("hls" | "dash", session id) -> the manifest URL
        self.revocations = revocations
        # where edge writes go (Redis when shared) and how a problem report reaches the other replicas
        self.edges: Edges = edges if edges is not None else LocalEdges(self.steering.registry)
        self.share_report = share_report

    def _interval(self) -> duration_pb2.Duration:
        d = duration_pb2.Duration()
        d.FromNanoseconds(int(self.steering.config.heartbeat_interval * 1e9))
        return d

    def edge_pb(self, record: EdgeRecord) -> pb.Edge:
        registry = self.steering.registry
        if not registry.alive(record):
            state = pb.EDGE_STATE_UNHEALTHY
        elif record.pathway_id in self.steering.demoted_pathways(registry.clock()):
            state = pb.EDGE_STATE_DEGRADED
        else:
            state = pb.EDGE_STATE_HEALTHY
        seen = timestamp_pb2.Timestamp()
        seen.FromNanoseconds(int((time.time() - (registry.clock() - record.last_heartbeat)) * 1e9))
        return pb.Edge(
            name=EDGE.format(edge=record.edge_id),
            pathway_id=record.pathway_id,
            base_uri=record.base_uri,
            zone=record.zone,
            role=ROLE_PB[record.role],
            capacity_bps=record.capacity_bps,
            state=state,
            last_heartbeat_time=seen,
            load=record.utilisation,
            countries=list(record.countries),
        )

    async def RegisterEdge(self, request: pb.RegisterEdgeRequest, context: Context) -> pb.RegisterEdgeResponse:
        require_admin()
        edge_id = request.edge_id or (EDGE.parse(request.edge.name, "edge.name")["edge"] if request.edge.name else "")
        record = await self.edges.register(_check_edge(request.edge, edge_id))
        return pb.RegisterEdgeResponse(edge=self.edge_pb(record), heartbeat_interval=self._interval())

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Context) -> pb.HeartbeatResponse:
        require_admin()
        edge_id = EDGE.parse(request.edge, "edge")["edge"]
        for field in ("active_connections", "egress_bps", "capacity_bps", "cache_used_bytes", "cache_capacity_bytes"):
            if getattr(request, field) < 0:
                raise InvalidArgument(f"{field} must not be negative", field_name=field)
        if len(request.cached_titles) > MAX_CACHED_TITLES:
            raise InvalidArgument(f"at most {MAX_CACHED_TITLES} cached titles", field_name="cached_titles")
        beat = Heartbeat(
            healthy=request.healthy,
            active_connections=request.active_connections,
            egress_bps=request.egress_bps,
            capacity_bps=request.capacity_bps,
            cache_used_bytes=request.cache_used_bytes,
            cache_capacity_bytes=request.cache_capacity_bytes,
            cached_titles=frozenset(request.cached_titles),
        )
        try:
            await self.edges.heartbeat(edge_id, beat)
        except KeyError:
            raise NotFound(f"edge {request.edge} is not registered: register again", reason="EDGE_NOT_FOUND") from None
        return pb.HeartbeatResponse(heartbeat_interval=self._interval())

    async def DeregisterEdge(self, request: pb.DeregisterEdgeRequest, context: Context) -> pb.DeregisterEdgeResponse:
        require_admin()
        edge_id = EDGE.parse(request.name)["edge"]
        if not await self.edges.deregister(edge_id):
            raise NotFound(f"edge {request.name} is not registered", reason="EDGE_NOT_FOUND")
        return pb.DeregisterEdgeResponse()

    async def GetEdge(self, request: pb.GetEdgeRequest, context: Context) -> pb.GetEdgeResponse:
        require_admin()
        record = self.steering.registry.get(EDGE.parse(request.name)["edge"])
        if record is None:
            raise NotFound(f"edge {request.name} is not registered", reason="EDGE_NOT_FOUND")
        return pb.GetEdgeResponse(edge=self.edge_pb(record))

    async def ListEdges(self, request: pb.ListEdgesRequest, context: Context) -> pb.ListEdgesResponse:
        require_admin()
        size = page_size(request.page_size)
        fingerprint = query_fingerprint({"list": "edges"})
        state = self.page_tokens.decode(request.page_token, fingerprint) if request.page_token else None
        after = state.decode() if state else ""
        edges = [e for e in self.steering.registry.all() if e.edge_id > after]
        page, more = edges[:size], len(edges) > size
        token = self.page_tokens.encode(page[-1].edge_id.encode() if more else None, fingerprint)
        return pb.ListEdgesResponse(edges=[self.edge_pb(e) for e in page], next_page_token=token)

    async def GetSteering(self, request: pb.GetSteeringRequest, context: Context) -> pb.GetSteeringResponse:
        require_admin()
        session_id = SESSION.parse(request.session, "session")["session"]
        title_id = TITLE.parse(request.title, "title")["title"]
        if not request.client_address:
            raise InvalidArgument("client_address is required", field_name="client_address")
        account = ACCOUNT.parse(request.account, "account")["account"] if request.account else ""
        try:
            decision = await self.sessions.steer(
                session_id,
                title_id=title_id,
                client=request.client_address,
                country=request.country,
                account=account,
                current_pathway=request.current_pathway,
                throughput_bps=request.throughput_bps if request.throughput_bps else None,
            )
        except SteeringError as exc:
            _raise(exc)
            raise
        ttl = duration_pb2.Duration(seconds=decision.ttl)
        return pb.GetSteeringResponse(
            pathways=[
                pb.Pathway(id=p.pathway_id, base_uri=p.base_uri, reason=REASON_PB[p.reason]) for p in decision.pathways
            ],
            ttl=ttl,
            reload_uri=self.reload_uri("hls", session_id),
        )

    async def ReportPathwayProblem(
        self, request: pb.ReportPathwayProblemRequest, context: Context
    ) -> pb.ReportPathwayProblemResponse:
        require_admin()
        session_id = SESSION.parse(request.session, "session")["session"]
        if request.kind == pb.PATHWAY_PROBLEM_KIND_UNSPECIFIED:
            raise InvalidArgument("kind must be STALL or ERROR", field_name="kind")
        try:
            zone, report = await self.sessions.report_problem(session_id, request.pathway_id, request.count or 1)
        except SteeringError as exc:
            _raise(exc)
            raise
        if self.share_report is not None:
            await self.share_report(zone, request.pathway_id, report)
        return pb.ReportPathwayProblemResponse()

    async def WatchRevocations(
        self, request: pb.WatchRevocationsRequest, context: Context
    ) -> AsyncIterator[pb.WatchRevocationsResponse]:
        require_admin()
        if request.after_sequence < 0:
            raise InvalidArgument("after_sequence must not be negative", field_name="after_sequence")
        feed = self.revocations
        after = feed.resume_point(request.epoch, request.after_sequence)
        first = True  # the first message, even empty, tells the follower which epoch it reads
        while True:
            batch = feed.since(after)[:MAX_REVOCATIONS_PER_MESSAGE]
            if not batch and not first:
                await feed.wait(after)
                continue
            after, first = (batch[-1].sequence if batch else after), False
            yield pb.WatchRevocationsResponse(
                sessions=[
                    pb.RevokedSession(
                        session=SESSION.format(session=r.session_id),
                        expire_time=timestamp_pb2.Timestamp(seconds=r.expire_time),
                    )
                    for r in batch
                ],
                epoch=feed.epoch,
                sequence=after,
            )
