"""Gateway configuration: the ``[services.gateway]`` section."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator

from services.common.config import Section
from services.common.http import HEADER_READ_TIMEOUT

# Headers a gRPC-web client sends that a browser asks permission for in its CORS preflight.
DEFAULT_ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
    "x-request-id",
    "x-accept-content-transfer-encoding",
    "x-accept-response-streaming",
)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0: a free port (8080 under marquee up)")
    public_url: str | None = Field(None, description="the URL people open; default http://{host}:{port}")
    header_read_timeout: float = Field(
        HEADER_READ_TIMEOUT,
        gt=0,
        description="seconds a client gets to send a whole request head (from connecting or its previous answer); "
        "slower clients are disconnected (slowloris), as at the edges; idle keep-alive connections close after it",
    )


class LimitsConfig(Section):
    max_request_bytes: int = Field(8 * 1024 * 1024, gt=0, description="a request body beyond it: RESOURCE_EXHAUSTED")
    max_message_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="one request message (decompressed) beyond it: RESOURCE_EXHAUSTED"
    )
    max_response_message_bytes: int = Field(16 * 1024 * 1024, gt=0, description="one backend response message")
    requests_per_second: int = Field(50, gt=0, description="per client address (token bucket via the RateLimiter)")
    burst: int = Field(100, gt=0, description="RPCs a client may send at once before the rate applies")
    max_in_flight: int = Field(2000, gt=0, description="RPCs proxied at once; beyond it: RESOURCE_EXHAUSTED")
    default_timeout: float = Field(
        60.0, gt=0, description="seconds: the backend deadline of unary RPCs that send no grpc-timeout"
    )


class CorsConfig(Section):
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description='origins allowed to call from a browser ("*": any; the gateway\'s own origin always is)',
    )
    allowed_headers: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_HEADERS))
    max_age: int = Field(7200, ge=0, description="seconds a browser may cache a preflight answer")


class GatewayConfig(Section):
    http: HttpConfig = HttpConfig()
    limits: LimitsConfig = LimitsConfig()
    cors: CorsConfig = CorsConfig()
    routes: dict[str, str] = Field(
        default_factory=dict,
        description="gRPC service full name -> backend host:port; empty: every service the platform runs",
    )
    static_dir: Path | None = Field(
        None, description="the built web player; default web/dist of the checkout, or the one the wheel carries"
    )
    immutable_paths: list[str] = Field(
        default_factory=lambda: ["/assets/"],
        description="URL prefixes of content-hashed files, cached for a year (Vite's assets directory)",
    )
    grace_period: float = Field(
        5.0, ge=0, description="seconds calls in flight get to finish on shutdown; open streams are then cut"
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="networks of the load balancers in front of the gateway whose x-forwarded-for is believed"
        " (read from the right, skipping them); empty: the transport peer is the client",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            ipaddress.ip_network(text, strict=False)  # ValueError names the bad network
        return value
