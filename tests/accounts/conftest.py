"""A real AccountService on loopback, over a real store (SQLite, then the session's Cassandra), for every
accounts test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr

from marquee.v1 import accounts_pb2, accounts_pb2_grpc
from services.accounts.config import AccountsConfig
from services.accounts.passwords import PasswordPolicy
from services.accounts.server import create_server
from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.config import AuthConfig, ServerConfig
from services.common.deps import Dependencies
from services.common.paging import PageTokens
from services.common.plans import DEFAULT_PLANS, Plan, Plans
from services.common.ratelimit import InMemoryRateLimiter, Rate
from tests.cql import open_test_store

KEY = "accounts-test-signing-key-0123456789abcdef"
AUTH = AuthConfig(keys={"k1": SecretStr(KEY)}, signing_kid="k1")
PASSWORD = "correct horse battery"

# cheap argon2id parameters keep the suite fast; production defaults are tested in test_passwords.py
FAST_PASSWORDS = PasswordPolicy(time_cost=1, memory_cost_kib=1024, parallelism=1)
FAMILY = Plan(id="family", display_name="Family", max_concurrent_streams=6, max_resolution_height=2160, max_devices=80)


def accounts_config(**overrides: object) -> AccountsConfig:
    values: dict[str, object] = {
        "server": ServerConfig(port=0, drain_delay=0, grace_period=1),
        "passwords": FAST_PASSWORDS,
        "sign_up_per_address": Rate(limit=1000, period=60),
        "sign_in_per_address": Rate(limit=1000, period=60),
        "sign_in_per_account": Rate(limit=1000, period=60),
    }
    values.update(overrides)
    return AccountsConfig.model_validate(values)


@dataclass
class Client:
    stub: accounts_pb2_grpc.AccountServiceAsyncStub
    channel: grpc.aio.Channel
    tokens: AccessTokens

    async def sign_up(self, email: str, plan: str = "plans/standard") -> accounts_pb2.SignUpResponse:
        return await self.stub.SignUp(
            accounts_pb2.SignUpRequest(email=email, password=PASSWORD, display_name=email.split("@")[0], plan=plan)
        )


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def deps(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Dependencies]:
    store = await open_test_store(store_kind, tmp_path, request, "accounts")
    bus = InMemoryBus()
    yield Dependencies(
        store=store,
        bus=bus,
        rate_limiter=InMemoryRateLimiter(),
        auth=AUTH,
        tokens=AccessTokens(AUTH),
        page_tokens=PageTokens(KEY.encode()),
        plans=Plans((*DEFAULT_PLANS, FAMILY)),
    )
    await bus.close()
    await store.close()


@pytest.fixture
def config() -> AccountsConfig:
    return accounts_config()


@pytest.fixture
async def client(deps: Dependencies, config: AccountsConfig) -> AsyncIterator[Client]:
    service = await create_server(config, deps)
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    try:
        yield Client(accounts_pb2_grpc.AccountServiceStub(channel), channel, deps.tokens)
    finally:
        await channel.close(None)
        await service.stop(0, drain=0)
