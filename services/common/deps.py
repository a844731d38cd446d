"""What a service needs from its surroundings, handed to ``create_server``: store, bus, limiter, keys.

The all-in-one platform builds one of these for every service in the process; a Kubernetes Deployment builds
one for its single service (with the distributed adapters)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.auth import AccessTokens
from services.common.bus.port import EventBus
from services.common.config import AuthConfig
from services.common.paging import PageTokens
from services.common.ratelimit import RateLimiter
from services.common.store.port import Store


@dataclass
class Dependencies:
    store: Store
    bus: EventBus
    rate_limiter: RateLimiter
    auth: AuthConfig
    tokens: AccessTokens
    page_tokens: PageTokens
