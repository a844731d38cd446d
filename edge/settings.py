"""The all-in-one's edge tier: the ``[services.edge]`` section."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from edge.config import NAME_PATTERN, MiB
from services.common.config import Section


class EdgeTierConfig(Section):
    enabled: bool = True
    edges: tuple[str, ...] = Field(("edge-a", "edge-b"), min_length=1, description="edge names (pathway ids)")
    zone: str = "local"
    first_edge_port: int = Field(8081, ge=0, le=65535, description="edges take consecutive ports; 0: any")
    hosts: tuple[str, ...] = Field(
        (),
        description="listen address per edge; default 127.0.0.2, 127.0.0.3, ...: players ban a failing host whatever"
        " its port (Shaka Player), so edges on one address would fail over together",
    )
    shield_port: int = Field(8090, ge=0, le=65535)
    shield_serves_players: bool = Field(
        False,
        description="whether players with a signed URL may fetch from the shield (a last resort; steering lists it"
        " only with [services.steering] shield_fallback); off: the shield serves edges' fills alone",
    )
    memory_bytes: int = Field(128 * MiB, ge=0)
    disk_bytes: int = Field(1024 * MiB, ge=0)
    shield_memory_bytes: int = Field(256 * MiB, ge=0)
    shield_disk_bytes: int = Field(4096 * MiB, ge=0)
    rate_limit_bytes_per_sec: int = Field(0, ge=0)
    trusted_proxies: tuple[str, ...] = Field(
        (), description="networks of load balancers in front of the edges, whose X-Forwarded-For is believed"
    )
    heartbeat_interval: float = Field(5.0, gt=0, description="seconds between heartbeats to steering")
    key_uri_base: str = Field(
        "",
        description="playback's manifest URL (e.g. http://127.0.0.1:8096): protected titles' HLS media playlists"
        " then name the session's raw keys there (KEYFORMAT identity for Shaka Player, and the AES-128 variant);"
        " empty: playback's when it runs in the same process (marquee up), else not named",
    )
    origin: Path | None = Field(None, description="origin store root; default {data_dir}/origin")

    @field_validator("edges")
    @classmethod
    def _names(cls, edges: tuple[str, ...]) -> tuple[str, ...]:
        for name in edges:
            if not re.match(NAME_PATTERN, name) or name == "shield":
                raise ValueError(f"edge name {name!r} must match {NAME_PATTERN} and not be 'shield'")
        if len(set(edges)) != len(edges):
            raise ValueError("edge names must be unique")
        return edges

    def host(self, i: int) -> str:
        """The listen address of the i-th edge."""
        if self.hosts:
            return self.hosts[i]
        if i > 250:
            raise ValueError("more than 250 edges need explicit hosts")
        return f"127.0.0.{2 + i}"

    @model_validator(mode="after")
    def _hosts(self) -> EdgeTierConfig:
        if self.hosts and len(self.hosts) != len(self.edges):
            raise ValueError(f"hosts gives {len(self.hosts)} addresses for {len(self.edges)} edges")
        return self
