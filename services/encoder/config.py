"""EncodingService configuration: the ``[services.encoder]`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.config import ServerConfig


class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    synthetic_seconds: float = Field(60.0, gt=0, le=3600, description="length of each synthetic demo master")


class EncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: ServerConfig = ServerConfig()
    origin: Path | None = Field(None, description="origin store root; default {data_dir}/origin")
    workers: int = Field(1, ge=1, le=64, description="encoder worker processes")
    preset: str = Field("veryfast", pattern=r"^(ultrafast|superfast|veryfast|faster|fast|medium|slow|slower|veryslow)$")
    threads: int = Field(0, ge=0, le=64, description="x264 threads per encoder (0: automatic)")
    max_source_uri: int = 2048
    lease_seconds: float = Field(
        30.0,
        ge=1,
        le=600,
        description="how long a running job stays leased to its encoder without a renewal (renewed every third of"
        " it): after an encoder dies, another redoes its jobs within this; keep it well above store latency and"
        " clock skew between replicas",
    )
    protection: Literal["none", "cenc", "cbcs"] = Field(
        "none",
        description="encrypt every title packaged from now on with Common Encryption ('cenc': AES-CTR, what every EME"
        " key system plays; 'cbcs': AES-CBC 1:9 pattern, FairPlay-shaped); keys per title and track type, wrapped"
        " by [content_keys]; 'none' publishes clear media",
    )
    hls_aes128: bool = Field(
        True,
        description="with protection on, also package each rendition's HLS AES-128 variant (RFC 8216 whole-segment"
        " AES-128-CBC, same keys) for players without EME; costs a second copy of the title's media",
    )
    demo: DemoConfig = DemoConfig()
