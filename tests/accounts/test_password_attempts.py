"""ChangePassword cannot be used to guess the password (issue 15, finding 7): its attempts count against the same
per-account limit as SignIn's, so a stolen access token buys no more guesses than the sign-in page.

The attempt counter is the rate limiter's key for the account, so it lives where ``[limits] kind`` puts the limiter:
the same tests run on the in-process limiter and on the Redis one, and with Redis the budget holds across accounts
replicas (two servers, each with Dependencies of its own, sharing only the store and Redis)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from marquee.v1 import accounts_pb2, accounts_pb2_grpc
from services.accounts.server import create_server
from services.common.deps import Dependencies
from services.common.errors import error_info
from services.common.ratelimit import Rate, RedisRateLimiter
from services.platform.localredis import RedisServer
from tests.accounts.conftest import PASSWORD, Client, accounts_config, bearer


@pytest.fixture(params=["memory", "redis"])
async def deps(deps: Dependencies, request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Dependencies]:
    """The accounts suite's Dependencies, with the in-process limiter or a Redis one."""
    if request.param == "memory":
        yield deps
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    try:
        yield dataclasses.replace(deps, rate_limiter=RedisRateLimiter(client, prefix=redis_prefix))
    finally:
        await client.aclose()


@pytest.fixture
def config() -> Any:
    return accounts_config(sign_in_per_account=Rate(limit=3, period=60))


async def _change(client: Client, up: accounts_pb2.SignUpResponse, current: str) -> grpc.StatusCode:
    try:
        await client.stub.ChangePassword(
            accounts_pb2.ChangePasswordRequest(
                account=up.account.name, current_password=current, new_password="a brand new passphrase"
            ),
            metadata=bearer(up.tokens.access_token),
        )
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            info = error_info(err)
            assert info is not None and info.reason == "RATE_LIMITED"
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
            assert status is not None and any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
        return err.code()
    return grpc.StatusCode.OK


async def test_change_password_guesses_are_limited_per_account(client: Client) -> None:
    up = await client.sign_up("guessed@example.com")
    outcomes = [await _change(client, up, f"guess number {i}") for i in range(12)]
    assert outcomes == [grpc.StatusCode.INVALID_ARGUMENT] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 9
    # while limited, the right password is refused too (the limit is not an oracle), and so is SignIn:
    # one budget of password attempts per account
    assert await _change(client, up, PASSWORD) == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.stub.SignIn(accounts_pb2.SignInRequest(email="guessed@example.com", password=PASSWORD))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # another account keeps its own budget
    other = await client.sign_up("unguessed@example.com")
    assert await _change(client, other, PASSWORD) == grpc.StatusCode.OK


async def test_the_budget_holds_across_replicas_sharing_redis(
    deps: Dependencies, config: Any, redis_server: RedisServer, redis_prefix: str
) -> None:
    """Two accounts replicas, each with its own Redis client and limiter on one server: guesses alternating
    between them spend one budget of attempts."""
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    services = []
    channels = []
    try:
        for client in clients:
            replica = dataclasses.replace(deps, rate_limiter=RedisRateLimiter(client, prefix=f"{redis_prefix}x:"))
            service = await create_server(config, replica)
            await service.start()
            services.append(service)
            channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}"))
        stubs = [accounts_pb2_grpc.AccountServiceStub(channel) for channel in channels]
        await stubs[0].SignUp(accounts_pb2.SignUpRequest(email="spread@example.com", password=PASSWORD))
        outcomes = []
        for i in range(6):
            try:
                await stubs[i % 2].SignIn(accounts_pb2.SignInRequest(email="spread@example.com", password=f"guess {i}"))
                outcomes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as err:
                outcomes.append(err.code())
        assert outcomes == [grpc.StatusCode.UNAUTHENTICATED] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    finally:
        for channel in channels:
            await channel.close(None)
        for service in services:
            await service.stop(0, drain=0)
        for client in clients:
            await client.aclose()


@pytest.mark.parametrize("config", [accounts_config(sign_in_per_address=Rate(limit=3, period=60))])
async def test_a_forged_forwarded_for_does_not_buy_more_sign_in_attempts(client: Client) -> None:
    """The per-address limit counts the address the trusted gateway appended (the right of x-forwarded-for), not
    a first hop the client wrote itself: rotating that hop changes nothing."""

    async def sign_in(forged: str, proxy_saw: str) -> grpc.StatusCode:
        chain = (("x-forwarded-for", f"{forged}, {proxy_saw}"),)
        try:
            await client.stub.SignIn(
                accounts_pb2.SignInRequest(email="nobody@example.com", password="x"), metadata=chain
            )
        except grpc.aio.AioRpcError as err:
            return err.code()
        return grpc.StatusCode.OK

    outcomes = [await sign_in(f"198.51.100.{i}", "203.0.113.5") for i in range(5)]
    assert outcomes[3:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2, outcomes
    assert await sign_in("198.51.100.1", "203.0.113.6") != grpc.StatusCode.RESOURCE_EXHAUSTED, "another client"
