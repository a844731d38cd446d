"""The platform dependencies a gateway under test gets: it uses only the rate limiter (and the backends' addresses,
which these tests give as configured routes); it keeps nothing in a store or on a bus."""

from __future__ import annotations

from pydantic import SecretStr

from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.config import AuthConfig
from services.common.deps import Dependencies
from services.common.paging import PageTokens
from services.common.ratelimit import InMemoryRateLimiter, RateLimiter
from services.common.store.sqlite import SqliteStore


def gateway_deps(limiter: RateLimiter | None = None) -> Dependencies:
    auth = AuthConfig(keys={"k": SecretStr("gateway-tests-key-" + "x" * 32)}, signing_kid="k")
    return Dependencies(
        SqliteStore(":memory:"),
        InMemoryBus(),
        limiter or InMemoryRateLimiter(),
        auth,
        AccessTokens(auth),
        PageTokens(b"gw"),
    )
