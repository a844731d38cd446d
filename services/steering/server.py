"""``create_server``: SteeringService over gRPC, the content steering manifests over HTTP, and the revocation feed
it fills from playback's ``playback.session_ended`` events."""

from __future__ import annotations

import logging

from marquee.v1 import playback_pb2, steering_pb2_grpc
from services.common import urltokens
from services.common.bus.consume import follow_topic
from services.common.bus.port import EventBus
from services.common.deps import Dependencies
from services.common.errors import Unavailable
from services.common.ids import new_id
from services.common.names import NamePattern
from services.common.server import ServiceBinding, build_server
from services.common.service import Background, Service
from services.common.topics import PLAYBACK_SESSION_ENDED
from services.steering.config import SteeringConfig
from services.steering.directory import LocalDirectory, SessionDirectory
from services.steering.directory_redis import RedisDirectory
from services.steering.evidence_redis import RedisEvidence
from services.steering.http import bind_http, reload_uri
from services.steering.registry_redis import RedisEdges
from services.steering.revocations import RevocationFeed
from services.steering.servicer import SERVICE_NAME, SteeringServicer
from services.steering.sessions import SharedSessions
from services.steering.steerer import Steering
from services.steering.zones import CoverageZones

# The all-in-one's coverage: every address is in zone "local", whose edges register with zone "local".
LOCAL_ZONES = {"coverageZones": {"local": {"network": ["0.0.0.0/0"], "network6": ["::/0"]}}}
SESSION = NamePattern("playbackSessions/{session}")
log = logging.getLogger("marquee.steering")


async def follow_session_ends(sessions: SharedSessions, feed: RevocationFeed, bus: EventBus) -> None:
    """Ends the sessions playback ended (their steering manifests answer 410, on every replica: each ends it and
    marks it ended in the session directory) and revokes their signed URLs at every edge following the feed. Each
    replica has a consumer group of its own: every one hears every end. The group starts at the oldest event the
    topic retains, so a replica that (re)starts revokes again every session whose URLs are still in force (earlier
    ends, and those already expired, change nothing)."""

    async def ended(event: playback_pb2.SessionEndedEvent) -> None:
        session_id = SESSION.parse(event.session, "session")["session"]
        feed.revoke(session_id, event.url_expire_time.seconds)
        try:
            await sessions.end(session_id)
        except Unavailable as exc:  # ended here all the same; every other replica marks it too
            log.warning("steering: could not mark session %s ended in the directory: %s", session_id, exc)

    group = f"steering-revocations-{new_id()}"
    await follow_topic(
        bus,
        PLAYBACK_SESSION_ENDED,
        group,
        "steering",
        playback_pb2.SessionEndedEvent,
        ended,
        from_beginning=True,
        per_process=True,
    )


class SteeringService(Service):
    """Steering's service, with its state (tests look into it)."""

    steering: Steering


async def create_server(config: SteeringConfig, deps: Dependencies) -> SteeringService:
    """Build the service (not started): the gRPC server and the HTTP endpoint bound, the revocation feed's follower
    ready to run."""
    zones = CoverageZones.load(config.coverage_zones) if config.coverage_zones else CoverageZones.from_dict(LOCAL_ZONES)
    shared = deps.state_redis is not None  # [state] kind = "redis": edges, problem reports and sessions shared
    steering = Steering(config, zones, shared_sessions=shared)
    prefix = f"{deps.redis_prefix}steering:"
    directory: SessionDirectory = LocalDirectory()
    if deps.state_redis is not None:
        directory = RedisDirectory(
            deps.state_redis,
            prefix=prefix,
            idle_timeout=config.session_idle_timeout,
            refresh_interval=config.session_refresh_interval,
            ended_memory=config.ended_session_memory,
        )
    sessions = SharedSessions(steering, directory, config.session_refresh_interval)
    feed = RevocationFeed(config.max_revocations)
    http = bind_http(sessions, config.http, deps.rate_limiter, urltokens.keyring(deps.url_signing))
    background: list[tuple[str, Background]] = [("revocations", lambda: follow_session_ends(sessions, feed, deps.bus))]
    edges: RedisEdges | None = None
    evidence: RedisEvidence | None = None
    if deps.state_redis is not None:
        interval = config.state_refresh_interval
        # a record outlives a silent edge's UNHEALTHY state by another timeout, then the edge registers again
        edges = RedisEdges(
            deps.state_redis,
            steering.registry,
            prefix=prefix,
            record_ttl=2 * config.heartbeat_timeout,
            refresh_interval=interval,
        )
        evidence = RedisEvidence(
            deps.state_redis, steering.evidence, steering.clock, prefix=prefix, refresh_interval=interval
        )
        background += [("edges", edges.run), ("problems", evidence.run)]
    servicer = SteeringServicer(
        sessions,
        deps.page_tokens,
        lambda kind, sid: reload_uri(http, kind, sid),
        feed,
        edges=edges,
        share_report=evidence.add if evidence is not None else None,
    )
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: steering_pb2_grpc.add_SteeringServiceServicer_to_server(servicer, server),
    )
    try:
        server, port = build_server(config.server, [binding], tokens=deps.tokens, denylist=deps.denylist)
    except Exception:
        await http.stop()
        raise
    service = SteeringService(
        "steering",
        grpc=server,
        grpc_port=port,
        sites=[("http", http)],
        background=background,
    )
    service.steering = steering
    return service
