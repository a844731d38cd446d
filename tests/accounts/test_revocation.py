"""Revocation reaches access tokens at once (issue 15, finding 3): after SignOut, refresh-token reuse,
RevokeAllSessions, ChangePassword or DeleteAccount, the access tokens of the ended sessions are refused by every
service of the process (UNAUTHENTICATED, TOKEN_REVOKED), not honoured until they expire 15 minutes later.

AccountService and CatalogService run here as in the all-in-one: two servers sharing one set of Dependencies."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aioredis

from marquee.v1 import accounts_pb2, accounts_pb2_grpc, catalog_pb2, catalog_pb2_grpc
from services.accounts.server import create_server as create_accounts
from services.catalog.config import CatalogConfig, DemoCatalogConfig
from services.catalog.server import create_server as create_catalog
from services.common.config import ServerConfig
from services.common.denylist_redis import RedisDenyList
from services.common.deps import Dependencies
from services.common.errors import error_info
from services.common.ports import free_port
from services.common.ratelimit import RedisRateLimiter
from tests.accounts.conftest import PASSWORD, Client, accounts_config, bearer

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def catalog(deps: Dependencies) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceAsyncStub]:
    quick = ServerConfig(port=0, drain_delay=0, grace_period=1)
    service = await create_catalog(CatalogConfig(server=quick, demo=DemoCatalogConfig(enabled=False)), deps)
    await service.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        yield catalog_pb2_grpc.CatalogServiceStub(channel)
    await service.stop(0, drain=0)


async def _works(client: Client, catalog: catalog_pb2_grpc.CatalogServiceAsyncStub, name: str, md: Metadata) -> None:
    await client.stub.GetAccount(accounts_pb2.GetAccountRequest(name=name), metadata=md)
    await catalog.ListTitles(catalog_pb2.ListTitlesRequest(), metadata=md)


async def _revoked(client: Client, catalog: catalog_pb2_grpc.CatalogServiceAsyncStub, name: str, md: Metadata) -> None:
    for call in (
        client.stub.GetAccount(accounts_pb2.GetAccountRequest(name=name), metadata=md),
        catalog.ListTitles(catalog_pb2.ListTitlesRequest(), metadata=md),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()
        info = error_info(err.value)
        assert info is not None and info.reason == "TOKEN_REVOKED", info
        assert "revoked" in (err.value.details() or "")


async def _sign_in(client: Client, email: str, password: str = PASSWORD) -> accounts_pb2.SignInResponse:
    return await client.stub.SignIn(accounts_pb2.SignInRequest(email=email, password=password))


async def test_sign_out_revokes_the_sessions_access_tokens(
    client: Client, catalog: catalog_pb2_grpc.CatalogServiceAsyncStub
) -> None:
    up = await client.sign_up("out@example.com")
    name = up.account.name
    other = await _sign_in(client, "out@example.com")
    # the session's tokens after a refresh and a profile selection all belong to it
    refreshed = await client.stub.RefreshTokens(
        accounts_pb2.RefreshTokensRequest(refresh_token=up.tokens.refresh_token)
    )
    selected = await client.stub.SelectProfile(
        accounts_pb2.SelectProfileRequest(profile=up.profile.name, refresh_token=refreshed.tokens.refresh_token),
        metadata=bearer(refreshed.tokens.access_token),
    )
    tokens = [up.tokens.access_token, refreshed.tokens.access_token, selected.tokens.access_token]
    for token in tokens:
        await _works(client, catalog, name, bearer(token))
    await client.stub.SignOut(accounts_pb2.SignOutRequest(refresh_token=selected.tokens.refresh_token))
    for token in tokens:
        await _revoked(client, catalog, name, bearer(token))
    await _works(client, catalog, name, bearer(other.tokens.access_token))  # another session of the account


async def test_refresh_token_reuse_revokes_the_sessions_access_tokens(
    client: Client, catalog: catalog_pb2_grpc.CatalogServiceAsyncStub
) -> None:
    up = await client.sign_up("reused@example.com")
    other = await _sign_in(client, "reused@example.com")
    second = await client.stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=up.tokens.refresh_token))
    with pytest.raises(grpc.aio.AioRpcError):  # a stolen copy of the first refresh token is replayed
        await client.stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=up.tokens.refresh_token))
    for token in (up.tokens.access_token, second.tokens.access_token):
        await _revoked(client, catalog, up.account.name, bearer(token))
    await _works(client, catalog, up.account.name, bearer(other.tokens.access_token))


async def test_revoke_all_sessions_revokes_every_access_token_of_the_account(
    client: Client, catalog: catalog_pb2_grpc.CatalogServiceAsyncStub
) -> None:
    up = await client.sign_up("all@example.com")
    stranger = await client.sign_up("stranger@example.com")
    sessions = [up.tokens.access_token, (await _sign_in(client, "all@example.com")).tokens.access_token]
    revoked = await client.stub.RevokeAllSessions(
        accounts_pb2.RevokeAllSessionsRequest(account=up.account.name), metadata=bearer(sessions[1])
    )
    assert revoked.revoked_sessions == 2
    for token in sessions:
        await _revoked(client, catalog, up.account.name, bearer(token))
    # signing in again works at once, and other accounts were never touched
    await _works(
        client, catalog, up.account.name, bearer((await _sign_in(client, "all@example.com")).tokens.access_token)
    )
    await _works(client, catalog, stranger.account.name, bearer(stranger.tokens.access_token))


async def test_change_password_revokes_every_access_token_of_the_account(
    client: Client, catalog: catalog_pb2_grpc.CatalogServiceAsyncStub
) -> None:
    up = await client.sign_up("changed@example.com")
    other = await _sign_in(client, "changed@example.com")
    await client.stub.ChangePassword(
        accounts_pb2.ChangePasswordRequest(
            account=up.account.name, current_password=PASSWORD, new_password="another long passphrase"
        ),
        metadata=bearer(up.tokens.access_token),
    )
    for token in (up.tokens.access_token, other.tokens.access_token):
        await _revoked(client, catalog, up.account.name, bearer(token))
    fresh = await _sign_in(client, "changed@example.com", "another long passphrase")
    await _works(client, catalog, up.account.name, bearer(fresh.tokens.access_token))


async def test_a_deleted_accounts_access_tokens_are_refused(
    client: Client, catalog: catalog_pb2_grpc.CatalogServiceAsyncStub
) -> None:
    up = await client.sign_up("deleted@example.com")
    profile_token = (
        await client.stub.SelectProfile(
            accounts_pb2.SelectProfileRequest(profile=up.profile.name), metadata=bearer(up.tokens.access_token)
        )
    ).tokens.access_token
    await client.stub.DeleteAccount(
        accounts_pb2.DeleteAccountRequest(name=up.account.name), metadata=bearer(up.tokens.access_token)
    )
    for token in (up.tokens.access_token, profile_token):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await catalog.ListTitles(catalog_pb2.ListTitlesRequest(), metadata=bearer(token))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = error_info(err.value)
        assert info is not None and info.reason == "TOKEN_REVOKED"


async def test_an_unreachable_shared_deny_list_refuses_calls_as_unavailable(deps: Dependencies) -> None:
    """``[state] kind = "redis"`` with Redis down: an authenticated call cannot be checked, so it is refused
    UNAVAILABLE (DENYLIST_UNAVAILABLE, retry later), never let through and never INTERNAL."""
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    service = await create_accounts(accounts_config(), dataclasses.replace(deps, denylist=RedisDenyList(redis)))
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
            stub = accounts_pb2_grpc.AccountServiceStub(channel)
            up = await stub.SignUp(accounts_pb2.SignUpRequest(email="nolist@example.com", password=PASSWORD))
            request = accounts_pb2.GetAccountRequest(name=up.account.name)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetAccount(request, metadata=bearer(up.tokens.access_token))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            info = error_info(err.value)
            assert info is not None and info.reason == "DENYLIST_UNAVAILABLE"
    finally:
        await service.stop(0, drain=0)
        await redis.aclose()


async def test_an_unreachable_shared_rate_limiter_refuses_calls_as_unavailable(deps: Dependencies) -> None:
    """``[limits] kind = "redis"`` with Redis down: a sign-in cannot be counted, so it is refused UNAVAILABLE
    (RATE_LIMITER_UNAVAILABLE, retry later), never let through unlimited and never INTERNAL."""
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    service = await create_accounts(accounts_config(), dataclasses.replace(deps, rate_limiter=RedisRateLimiter(redis)))
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
            stub = accounts_pb2_grpc.AccountServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.SignIn(accounts_pb2.SignInRequest(email="nolimit@example.com", password=PASSWORD))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            info = error_info(err.value)
            assert info is not None and info.reason == "RATE_LIMITER_UNAVAILABLE"
    finally:
        await service.stop(0, drain=0)
        await redis.aclose()
