"""The account / profile / device / token lifecycle over real gRPC."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import field_mask_pb2

from marquee.v1 import accounts_pb2, common_pb2
from services.common.errors import error_info
from tests.accounts.conftest import PASSWORD, Client, bearer


async def _fails(coro: object, code: grpc.StatusCode, reason: str | None = None) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await coro  # type: ignore[misc]
    assert err.value.code() == code, err.value.details()
    if reason is not None:
        info = error_info(err.value)
        assert info is not None and info.reason == reason, info
    return err.value


async def test_full_lifecycle(client: Client) -> None:
    stub = client.stub
    up = await client.sign_up("Ada@Example.com")
    account = up.account
    assert account.email == "ada@example.com"
    assert account.plan == "plans/standard"
    assert up.profile.display_name == "Ada"
    assert up.profile.maturity_limit == common_pb2.MATURITY_RATING_ADULT
    md = bearer(up.tokens.access_token)
    principal = client.tokens.verify(up.tokens.access_token)
    assert account.name == f"accounts/{principal.account_id}" and principal.profile_id is None

    got = await stub.GetAccount(accounts_pb2.GetAccountRequest(name=account.name), metadata=md)
    assert got.account == account

    updated = await stub.UpdateAccount(
        accounts_pb2.UpdateAccountRequest(
            account=accounts_pb2.Account(name=account.name, display_name="Ada L.", plan="plans/premium"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name", "plan"]),
        ),
        metadata=md,
    )
    assert (updated.account.display_name, updated.account.plan) == ("Ada L.", "plans/premium")

    # profiles: a kids profile gets a children's limit by default; select it to get a profile-bound token
    kids = await stub.CreateProfile(
        accounts_pb2.CreateProfileRequest(
            parent=account.name, profile=accounts_pb2.Profile(display_name="Kids", kids=True)
        ),
        metadata=md,
    )
    assert kids.profile.maturity_limit == common_pb2.MATURITY_RATING_KIDS_7
    selected = await stub.SelectProfile(
        accounts_pb2.SelectProfileRequest(profile=kids.profile.name, refresh_token=up.tokens.refresh_token),
        metadata=md,
    )
    p = client.tokens.verify(selected.tokens.access_token)
    assert p.profile_id == kids.profile.name.rsplit("/", 1)[1]
    assert p.plan == "premium"
    assert p.max_maturity == common_pb2.MATURITY_RATING_KIDS_7, "services filter by the profile's limit"
    assert client.tokens.verify(up.tokens.access_token).max_maturity is None
    # the old refresh token was rotated into the new pair: using it again revokes the session, access tokens too
    await _fails(
        stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=up.tokens.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_REUSED",
    )
    await _fails(
        stub.GetAccount(accounts_pb2.GetAccountRequest(name=account.name), metadata=md),
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_REVOKED",
    )
    md = bearer(
        (await stub.SignIn(accounts_pb2.SignInRequest(email="ada@example.com", password=PASSWORD))).tokens.access_token
    )

    renamed = await stub.UpdateProfile(
        accounts_pb2.UpdateProfileRequest(
            profile=accounts_pb2.Profile(name=kids.profile.name, display_name="Little Ones", language="fr-CA"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name", "language"]),
        ),
        metadata=md,
    )
    assert (renamed.profile.display_name, renamed.profile.language, renamed.profile.kids) == (
        "Little Ones",
        "fr-CA",
        True,
    )
    # the old name is free again, the new one is taken
    await stub.CreateProfile(
        accounts_pb2.CreateProfileRequest(parent=account.name, profile=accounts_pb2.Profile(display_name="kids")),
        metadata=md,
    )
    await _fails(
        stub.CreateProfile(
            accounts_pb2.CreateProfileRequest(
                parent=account.name, profile=accounts_pb2.Profile(display_name="LITTLE ONES")
            ),
            metadata=md,
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "PROFILE_NAME_TAKEN",
    )
    await stub.DeleteProfile(accounts_pb2.DeleteProfileRequest(name=kids.profile.name), metadata=md)
    await _fails(
        stub.GetProfile(accounts_pb2.GetProfileRequest(name=kids.profile.name), metadata=md),
        grpc.StatusCode.NOT_FOUND,
        "PROFILE_NOT_FOUND",
    )
    listed = await stub.ListProfiles(accounts_pb2.ListProfilesRequest(parent=account.name), metadata=md)
    assert sorted(x.display_name for x in listed.profiles) == ["Ada", "kids"]

    # devices, and signing in on one
    tv = await stub.RegisterDevice(
        accounts_pb2.RegisterDeviceRequest(
            parent=account.name,
            device=accounts_pb2.Device(display_name="Living room", type=common_pb2.DEVICE_TYPE_TV),
        ),
        metadata=md,
    )
    signed_in = await stub.SignIn(
        accounts_pb2.SignInRequest(email="ada@example.com", password=PASSWORD, device=tv.device.name)
    )
    assert client.tokens.verify(signed_in.tokens.access_token).device_id == tv.device.name.rsplit("/", 1)[1]

    # refresh rotates; sign-out ends the session
    r1 = await stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=signed_in.tokens.refresh_token))
    assert r1.tokens.refresh_token != signed_in.tokens.refresh_token
    await stub.SignOut(accounts_pb2.SignOutRequest(refresh_token=r1.tokens.refresh_token))
    await _fails(
        stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=r1.tokens.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )

    # revoke everything; change the password; the old password stops working
    other_session = await stub.SignIn(accounts_pb2.SignInRequest(email="ada@example.com", password=PASSWORD))
    revoked = await stub.RevokeAllSessions(accounts_pb2.RevokeAllSessionsRequest(account=account.name), metadata=md)
    assert revoked.revoked_sessions >= 1
    await _fails(
        stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=other_session.tokens.refresh_token)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    md = bearer(
        (await stub.SignIn(accounts_pb2.SignInRequest(email="ada@example.com", password=PASSWORD))).tokens.access_token
    )
    await stub.ChangePassword(
        accounts_pb2.ChangePasswordRequest(
            account=account.name, current_password=PASSWORD, new_password="n3w pass phrase"
        ),
        metadata=md,
    )
    await _fails(
        stub.SignIn(accounts_pb2.SignInRequest(email="ada@example.com", password=PASSWORD)),
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_CREDENTIALS",
    )
    signed_in = await stub.SignIn(accounts_pb2.SignInRequest(email="ada@example.com", password="n3w pass phrase"))
    md = bearer(signed_in.tokens.access_token)

    await stub.DeleteDevice(accounts_pb2.DeleteDeviceRequest(name=tv.device.name), metadata=md)
    await stub.DeleteAccount(accounts_pb2.DeleteAccountRequest(name=account.name), metadata=md)
    await _fails(
        stub.SignIn(accounts_pb2.SignInRequest(email="ada@example.com", password="n3w pass phrase")),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    # the email is free again
    assert (await client.sign_up("ada@example.com")).account.name != account.name


async def test_refresh_token_reuse_revokes_the_family(client: Client) -> None:
    stub = client.stub
    up = await client.sign_up("reuse@example.com")
    first = up.tokens.refresh_token
    second = (await stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=first))).tokens.refresh_token
    # an attacker replays the first token: detected, and the legitimate successor dies with the family
    await _fails(
        stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=first)),
        grpc.StatusCode.UNAUTHENTICATED,
        "REFRESH_TOKEN_REUSED",
    )
    await _fails(
        stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=second)),
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_TOKEN",
    )
    # another session of the same account is untouched
    other = await stub.SignIn(accounts_pb2.SignInRequest(email="reuse@example.com", password=PASSWORD))
    await stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=other.tokens.refresh_token))


async def test_concurrent_refresh_has_one_winner(client: Client) -> None:
    up = await client.sign_up("race@example.com")
    results = await asyncio.gather(
        *(
            client.stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=up.tokens.refresh_token))
            for _ in range(8)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(
        isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.UNAUTHENTICATED
        for r in results
        if isinstance(r, BaseException)
    )


async def test_profile_limit_holds_under_concurrency(client: Client) -> None:
    up = await client.sign_up("many@example.com")
    md = bearer(up.tokens.access_token)
    results = await asyncio.gather(
        *(
            client.stub.CreateProfile(
                accounts_pb2.CreateProfileRequest(
                    parent=up.account.name, profile=accounts_pb2.Profile(display_name=f"P{i}")
                ),
                metadata=md,
            )
            for i in range(10)
        ),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 4  # plus the first profile: 5
    for r in results:
        if isinstance(r, grpc.aio.AioRpcError):
            assert r.code() == grpc.StatusCode.FAILED_PRECONDITION
            info = error_info(r)
            assert info is not None and info.reason == "PROFILE_LIMIT_REACHED"
    listed = await client.stub.ListProfiles(accounts_pb2.ListProfilesRequest(parent=up.account.name), metadata=md)
    assert len(listed.profiles) == 5
    # the last profile cannot be removed
    for prof in listed.profiles[1:]:
        await client.stub.DeleteProfile(accounts_pb2.DeleteProfileRequest(name=prof.name), metadata=md)
    await _fails(
        client.stub.DeleteProfile(accounts_pb2.DeleteProfileRequest(name=listed.profiles[0].name), metadata=md),
        grpc.StatusCode.FAILED_PRECONDITION,
        "LAST_PROFILE",
    )


async def test_device_limit_follows_the_plan(client: Client) -> None:
    up = await client.sign_up("basic@example.com", plan="plans/basic")
    md = bearer(up.tokens.access_token)

    async def register(i: int) -> accounts_pb2.RegisterDeviceResponse:
        return await client.stub.RegisterDevice(
            accounts_pb2.RegisterDeviceRequest(
                parent=up.account.name,
                device=accounts_pb2.Device(display_name=f"Phone {i}", type=common_pb2.DEVICE_TYPE_PHONE),
            ),
            metadata=md,
        )

    first = await register(1)
    await register(2)
    await _fails(register(3), grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_LIMIT_REACHED")
    await client.stub.DeleteDevice(accounts_pb2.DeleteDeviceRequest(name=first.device.name), metadata=md)
    await register(3)


async def test_paging_through_many_devices(client: Client) -> None:
    up = await client.sign_up("family@example.com", plan="plans/family")
    md = bearer(up.tokens.access_token)
    names = []
    for i in range(60):
        resp = await client.stub.RegisterDevice(
            accounts_pb2.RegisterDeviceRequest(
                parent=up.account.name,
                device=accounts_pb2.Device(display_name=f"Device {i}", type=common_pb2.DEVICE_TYPE_BROWSER),
            ),
            metadata=md,
        )
        names.append(resp.device.name)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await client.stub.ListDevices(
            accounts_pb2.ListDevicesRequest(parent=up.account.name, page_size=7, page_token=token), metadata=md
        )
        pages += 1
        seen += [d.name for d in page.devices]
        token = page.next_page_token
        if not token:
            break
    assert pages == 9
    assert seen == names  # registration order, no gaps, no duplicates
    # a page token only works for the query it came from
    other = await client.sign_up("other@example.com")
    first_page = await client.stub.ListDevices(
        accounts_pb2.ListDevicesRequest(parent=up.account.name, page_size=7), metadata=md
    )
    err = await _fails(
        client.stub.ListProfiles(
            accounts_pb2.ListProfilesRequest(parent=up.account.name, page_token=first_page.next_page_token),
            metadata=md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "another query" in (err.details() or "")
    assert other.account.name != up.account.name


async def test_plans_are_public_and_paged(client: Client) -> None:
    page1 = await client.stub.ListPlans(accounts_pb2.ListPlansRequest(page_size=2))
    page2 = await client.stub.ListPlans(accounts_pb2.ListPlansRequest(page_size=2, page_token=page1.next_page_token))
    names = [p.name for p in page1.plans] + [p.name for p in page2.plans]
    assert names == ["plans/basic", "plans/standard", "plans/premium", "plans/family"]
    assert page2.next_page_token == ""
    premium = await client.stub.GetPlan(accounts_pb2.GetPlanRequest(name="plans/premium"))
    assert (premium.plan.max_concurrent_streams, premium.plan.max_resolution_height) == (4, 2160)
    await _fails(
        client.stub.GetPlan(accounts_pb2.GetPlanRequest(name="plans/gold")), grpc.StatusCode.NOT_FOUND, "PLAN_NOT_FOUND"
    )
