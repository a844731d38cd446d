"""What a service needs from its surroundings, handed to ``create_server(config, deps)``: the store, the bus, the
rate limiter, the token keys and the deny list of revoked access tokens, and the platform-wide facts every service
may read (URL-signing keys, where clients are, the plans, the data directory, the addresses of other services).

``marquee up`` builds one of these for every service in the process; ``marquee serve NAME`` (a Kubernetes
Deployment) builds one for its single service, with the distributed adapters. A service reaches another only
through its gRPC contract, at the address named here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from services.common.auth import AccessTokens
from services.common.bus.port import EventBus
from services.common.config import (
    AuthConfig,
    ConfigError,
    ContentKeysConfig,
    GeoConfig,
    RedisConfig,
    UrlSigningConfig,
)
from services.common.denylist import DenyList, InMemoryDenyList
from services.common.geo import Geo
from services.common.paging import PageTokens
from services.common.plans import Plans
from services.common.ratelimit import RateLimiter
from services.common.store.port import Store


class MissingDependency(ConfigError):
    """A service this one calls has no address (``[addresses]``)."""


@dataclass
class Dependencies:
    store: Store
    bus: EventBus
    rate_limiter: RateLimiter
    auth: AuthConfig
    tokens: AccessTokens
    page_tokens: PageTokens
    denylist: DenyList = field(default_factory=InMemoryDenyList)
    url_signing: UrlSigningConfig = field(default_factory=UrlSigningConfig)
    content_keys: ContentKeysConfig = field(default_factory=ContentKeysConfig)  # master keys: only the key owner
    geo: Geo = field(default_factory=lambda: Geo(GeoConfig()))
    plans: Plans = field(default_factory=Plans)
    data_dir: Path = Path("data")
    addresses: Mapping[str, str] = field(default_factory=dict)
    redis_prefix: str = "marquee:"  # [redis] key_prefix: where state a service keeps in Redis goes
    # with [state] kind = "redis": the client for state every replica shares (under redis_prefix)
    state_redis: aioredis.Redis | None = None
    # the [redis] server itself, when one is configured: for clients that are not redis-py's (the native front)
    redis_server: RedisConfig | None = None

    def address(self, service: str) -> str:
        """The gRPC address of ``service`` (host:port), which this process was told of."""
        found = self.addresses.get(service)
        if not found:
            raise MissingDependency(f"no address for the {service} service: set addresses.{service} (host:port)")
        return found
