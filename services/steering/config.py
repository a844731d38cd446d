"""Steering configuration: the ``[services.steering]`` section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.config import Section, ServerConfig


class HttpConfig(Section):
    """The content steering manifests players reload."""

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0: a free port (8095 under marquee up)")
    public_url: str | None = Field(None, description="base of RELOAD-URI; default http://{host}:{port}")
    max_requests_per_second: int = Field(5000, gt=0, description="beyond it: 429 with Retry-After")


class SteeringConfig(Section):
    server: ServerConfig = ServerConfig()
    http: HttpConfig = HttpConfig()
    coverage_zones: Path | None = Field(None, description="coverage zone file (JSON); default: one zone 'local'")
    ttl_seconds: int = Field(10, ge=1, le=3600, description="how long players keep a steering answer")
    heartbeat_interval: float = Field(5.0, gt=0, description="seconds; told to edges when they register")
    heartbeat_timeout: float = Field(15.0, gt=0, description="an edge silent this long leaves every answer")
    session_idle_timeout: float = Field(120.0, gt=0, description="a session not steered this long has ended")
    ended_session_memory: float = Field(3600.0, ge=0, description="seconds an ended session still answers 410")
    max_sessions: int = Field(1_000_000, gt=0)
    bound_factor: float = Field(1.25, ge=1.0, description="c of consistent hashing with bounded loads")
    max_utilisation: float = Field(0.95, gt=0, description="egress/capacity at which an edge takes no new sessions")
    shield_fallback: bool = Field(
        False,
        description="list shields (and origins) to players as a last resort; their data plane must then take"
        " players' signed URLs ([services.edge] shield_serves_players). Off: players only ever see edges",
    )
    problem_window: float = Field(60.0, gt=0, description="seconds player problem reports count for")
    problem_threshold: int = Field(
        5, ge=1, description="problems in the window (capped per session and account) that demote a pathway in a zone"
    )
    problem_session_cap: int = Field(2, ge=1, description="most problems one session, or one account, counts for")
    problem_min_sessions: int = Field(3, ge=1, description="distinct sessions whose reports a demotion needs")
    problem_min_accounts: int = Field(3, ge=1, description="distinct accounts whose reports a demotion needs")
    max_problem_reports: int = Field(10_000, ge=1, description="reports kept per zone and pathway (oldest dropped)")
    session_demotion: float = Field(60.0, gt=0, description="seconds a pathway stays demoted for the reporter")
    max_revocations: int = Field(
        1_000_000, ge=1, description="ended sessions the revocation feed holds (each until its URLs expire)"
    )
    state_refresh_interval: float = Field(
        0.5,
        gt=0,
        le=5,
        description='with [state] kind = "redis": seconds between refreshes of the local snapshot of the edges and'
        " problem reports every replica shares (how stale another replica's writes may be here)",
    )
    session_refresh_interval: float = Field(
        5.0,
        gt=0,
        description='with [state] kind = "redis": most seconds between rewrites of a steered session in the session'
        " directory every replica shares (its reloads in between write nothing)",
    )
    min_throughput_bps: int = Field(200_000, ge=0, description="a player measuring less demotes its pathway")
