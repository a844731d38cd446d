"""``create_server``: the AccountService ready to start, on the platform runtime."""

from __future__ import annotations

from marquee.v1 import accounts_pb2_grpc
from services.accounts import schema
from services.accounts.config import AccountsConfig
from services.accounts.devices import Devices
from services.accounts.identity import Identity
from services.accounts.passwords import Passwords
from services.accounts.profiles import Profiles
from services.accounts.refresh import RefreshTokens
from services.accounts.servicer import KIDS_MAX_MATURITY, PUBLIC_METHODS, SERVICE_NAME, AccountServicer
from services.common.deps import Dependencies
from services.common.server import Server, ServiceBinding, build_server


async def create_server(config: AccountsConfig, deps: Dependencies) -> tuple[Server, int]:
    """Migrate the accounts keyspace and build the server (not started); returns it and its bound port."""
    await deps.store.migrate(schema.SCHEMA)
    refresh = RefreshTokens(deps.store, deps.auth.refresh_token_ttl)
    servicer = AccountServicer(
        config=config,
        identity=Identity(deps.store, config, Passwords(config.passwords), refresh, deps.rate_limiter),
        profiles=Profiles(deps.store, config.max_profiles, KIDS_MAX_MATURITY),
        devices=Devices(deps.store),
        refresh=refresh,
        access=deps.tokens,
        page_tokens=deps.page_tokens,
    )
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: accounts_pb2_grpc.add_AccountServiceServicer_to_server(servicer, server),
        public_methods=PUBLIC_METHODS,
    )
    return build_server(config.server, [binding], tokens=deps.tokens)
