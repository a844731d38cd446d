"""Playback configuration: the ``[services.playback]`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from services.common.config import Section, ServerConfig
from services.common.ratelimit import Rate


class ManifestHttpConfig(Section):
    """Where per-session manifests (and the sessions' ClearKey licence endpoint) are served."""

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0: a free port (8096 under marquee up)")
    public_url: str | None = Field(None, description="base of manifest URLs; default http://{host}:{port}")


class LicenseConfig(Section):
    """The licence service (LicenseService over gRPC and the ClearKey HTTP endpoint next to the manifests)."""

    duration: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="seconds a licence is valid, never past its session's lease (players ask again while it lives)",
    )
    max_key_ids: int = Field(16, ge=1, le=256, description="key ids one licence request may name")
    max_body_bytes: int = Field(
        4096, ge=256, le=65536, description="largest ClearKey licence request body accepted (HTTP 413 above)"
    )
    per_account: Rate = Field(
        Rate(limit=60, period=60, burst=20),
        description="licences one account may ask for, over every session and both surfaces (a player asks once"
        " per session and again as each licence nears its end): RESOURCE_EXHAUSTED / HTTP 429, RATE_LIMITED",
    )
    per_address: Rate = Field(
        Rate(limit=120, period=60, burst=40),
        description="requests to the HTTP licence endpoint from one client address, counted before the token is"
        " checked (so floods of bad tokens are refused cheaply): HTTP 429, RATE_LIMITED",
    )


class PlaybackConfig(Section):
    server: ServerConfig = ServerConfig()
    http: ManifestHttpConfig = ManifestHttpConfig()
    license: LicenseConfig = LicenseConfig()
    origin: Path | None = Field(None, description="origin store root (media descriptions); default {data_dir}/origin")
    heartbeat_interval: float = Field(10.0, gt=0, description="seconds between UpdatePosition calls")
    session_timeout: float = Field(
        45.0, gt=0, description="a session without heartbeat this long ends, and its signed URLs with it"
    )
    expiry_sweep_interval: float = Field(
        30.0, gt=0, description="seconds between sweeps that end (and account for) sessions whose lease lapsed"
    )
    finished_fraction: float = Field(0.95, gt=0, le=1.0, description="watched share at which a title is finished")
    max_page_size: int = Field(100, ge=1, le=1000)
    positions: Literal["store", "redis"] = Field(
        "store",
        description="where UpdatePosition writes: the store (each call commits there), or Redis with write-behind"
        ' to the store through playback.update (needs [bus] kind = "redis")',
    )
    ingest: Literal["native", "grpc"] = Field(
        "native",
        description="who listens on the gRPC address when positions and the deny list are on Redis: the native"
        " front, answering valid UpdatePosition calls itself and forwarding every other call to the grpc.aio"
        " server on a private port (services/playback/ingest.py), or the grpc.aio server alone",
    )
    positions_idle_ttl: float = Field(
        7 * 86400.0, gt=0, description="seconds a resume position stays in Redis after its last read or write"
    )
