"""Edge configuration: the data plane settings handed to Rust as JSON, and the control plane's own settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from services.common.config import GeoConfig, Section
from services.common.geo import network_layers

MiB = 1024 * 1024
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"


class DirUpstream(Section):
    """The origin store on local disk."""

    kind: Literal["dir"] = "dir"
    root: Path


class HttpUpstream(Section):
    """Another edge (a shield) or an HTTP origin; objects are fetched from ``{base_url}{key}``."""

    kind: Literal["http"] = "http"
    base_url: str = Field(pattern=r"^http://[^/]+/(.*/)?$")


Upstream = Annotated[DirUpstream | HttpUpstream, Field(discriminator="kind")]


class EdgeGeoConfig(Section):
    """Where clients are, for tokens bound to licensed regions (``native/core/src/edge/geo.rs``)."""

    layers: list[list[tuple[str, str]]] = Field(default_factory=list, description="(network, region), first wins")
    loopback_region: str = ""
    default_region: str = ""
    trusted_proxies: tuple[str, ...] = Field((), description="whose X-Forwarded-For is believed (load balancers)")

    @classmethod
    def of(cls, geo: GeoConfig, trusted_proxies: tuple[str, ...] = ()) -> EdgeGeoConfig:
        """The platform's ``[geo]`` for an edge. Players reach edges directly, so the gateways the backends trust
        are not the edge's proxies: those are its own (``trusted_proxies``)."""
        return cls(
            layers=network_layers(geo),
            loopback_region=geo.loopback_region,
            default_region=geo.default_region,
            trusted_proxies=trusted_proxies,
        )


class DataPlaneConfig(Section):
    """What the Rust data plane gets (``native/core/src/edge/config.rs`` mirrors it field by field)."""

    name: str = Field(pattern=NAME_PATTERN)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    prefix: str = Field("/v/", pattern=r"^/([A-Za-z0-9_-]+/)*$")
    upstream: Upstream
    memory_bytes: int = Field(256 * MiB, ge=0)
    disk_bytes: int = Field(0, ge=0, description="0: no disk tier")
    disk_dir: Path | None = None
    policy: Literal["s3fifo", "lru"] = "s3fifo"
    max_object_bytes: int = Field(64 * MiB, gt=0, description="larger objects are streamed through, not cached")
    workers: int = Field(2, ge=1, le=256, description="data plane threads")
    upstream_timeout_ms: int = Field(5000, gt=0)
    upstream_retries: int = Field(2, ge=0, le=10)
    upstream_backoff_ms: int = Field(100, ge=0)
    max_header_bytes: int = Field(16 * 1024, ge=8192, description="request head limit (431 beyond)")
    max_headers: int = Field(64, ge=1, le=1024)
    rate_limit_bytes_per_sec: int = Field(0, ge=0, description="per-connection egress cap; 0: none")
    token_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="players' signed URL keys by id; empty: players are not served (a shield players may not use)",
    )
    token_param: str = "token"
    fill_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="fill credential keys by id: an edge signs its upstream requests, a shield verifies them",
    )
    fill_signing_kid: str = Field("", description="the fill key an edge signs with; default: the first")
    revoked_capacity: int = Field(1_000_000, ge=1, description="most revoked playback sessions remembered")
    geo: EdgeGeoConfig | None = Field(None, description="where clients are; none: region-bound tokens are refused")
    cors_origin: str = "*"
    key_uri_base: str = Field(
        "",
        pattern=r"^(https?://[^\s\"<>\\]+)?$",
        description="playback's manifest endpoint (its public URL): protected titles' media playlists then name the"
        " session's raw keys there (KEYFORMAT identity, how Shaka Player takes ClearKey from HLS); empty: not named",
    )

    @model_validator(mode="after")
    def _disk(self) -> DataPlaneConfig:
        if self.disk_bytes and self.disk_dir is None:
            raise ValueError("disk_dir is required when disk_bytes > 0")
        if self.fill_signing_kid and self.fill_signing_kid not in self.fill_keys:
            raise ValueError("fill_signing_kid is not one of fill_keys")
        return self

    def native_json(self) -> str:
        doc = self.model_dump(mode="json", exclude={"token_keys", "fill_keys"})
        for name in ("token_keys", "fill_keys"):
            keys: dict[str, SecretStr] = getattr(self, name)
            doc[name] = {kid: s.get_secret_value().encode().hex() for kid, s in keys.items()}
        return json.dumps(doc)


class EdgeNodeConfig(Section):
    """One edge: its data plane and what steering needs to know about it."""

    data_plane: DataPlaneConfig
    role: Literal["edge", "shield"] = "edge"
    pathway_id: str = Field("", description="content steering pathway; default: the edge's name")
    zone: str = "local"
    countries: tuple[str, ...] = ()
    capacity_bps: int = Field(10_000_000_000, gt=0, description="egress capacity, bits/s")
    public_base_url: str | None = Field(None, description="what players use; default http://{host}:{port}{prefix}")

    @property
    def name(self) -> str:
        return self.data_plane.name
