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
from services.accounts.revocation import AccessRevoker
from services.accounts.servicer import KIDS_MAX_MATURITY, PUBLIC_METHODS, SERVICE_NAME, AccountServicer
from services.common.deps import Dependencies
from services.common.server import ServiceBinding, build_server
from services.common.service import Service


async def create_server(config: AccountsConfig, deps: Dependencies) -> Service:
    """Migrate the accounts keyspace and build the service (not started)."""
    config.check_plans(deps.plans)
    await deps.store.migrate(schema.SCHEMA)
    revoker = AccessRevoker(deps.denylist, deps.bus, deps.auth)
    refresh = RefreshTokens(deps.store, deps.auth.refresh_token_ttl, revoker)
    servicer = AccountServicer(
        config=config,
        plans=deps.plans,
        identity=Identity(deps.store, config, deps.plans, Passwords(config.passwords), refresh, deps.rate_limiter),
        profiles=Profiles(deps.store, config.max_profiles, KIDS_MAX_MATURITY),
        devices=Devices(deps.store),
        refresh=refresh,
        access=deps.tokens,
        page_tokens=deps.page_tokens,
        geo=deps.geo,
    )
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: accounts_pb2_grpc.add_AccountServiceServicer_to_server(servicer, server),
        public_methods=PUBLIC_METHODS,
    )
    server, port = build_server(config.server, [binding], tokens=deps.tokens, denylist=deps.denylist)
    return Service("accounts", grpc=server, grpc_port=port)
