"""Edge configuration: the data plane settings handed to Rust as JSON, and the control plane's own settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from services.common.config import Section

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
        default_factory=dict, description="signed URL keys by id; empty: no token required (a shield)"
    )
    token_param: str = "token"
    cors_origin: str = "*"

    @model_validator(mode="after")
    def _disk(self) -> DataPlaneConfig:
        if self.disk_bytes and self.disk_dir is None:
            raise ValueError("disk_dir is required when disk_bytes > 0")
        return self

    def native_json(self) -> str:
        doc = self.model_dump(mode="json", exclude={"token_keys"})
        doc["token_keys"] = {kid: s.get_secret_value().encode().hex() for kid, s in self.token_keys.items()}
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
