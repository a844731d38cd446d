"""A kids profile cannot leave itself (issue 15, finding 5): from a kids-profile token, profile, plan, device and
account changes are PERMISSION_DENIED (KIDS_PROFILE), and selecting another profile needs the account password
(PASSWORD_REQUIRED without it; a wrong one is INVALID_CREDENTIALS and counts against the password-attempt limit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from marquee.v1 import accounts_pb2, common_pb2
from services.common.errors import error_info
from tests.accounts.conftest import PASSWORD, Client, bearer

Metadata = tuple[tuple[str, str], ...]


@dataclass
class Household:
    up: accounts_pb2.SignUpResponse
    kids: accounts_pb2.Profile
    kids_md: Metadata
    kids_refresh: str


async def _household(client: Client, email: str) -> Household:
    up = await client.sign_up(email)
    md = bearer(up.tokens.access_token)
    kids = await client.stub.CreateProfile(
        accounts_pb2.CreateProfileRequest(
            parent=up.account.name, profile=accounts_pb2.Profile(display_name="Kids", kids=True)
        ),
        metadata=md,
    )
    selected = await client.stub.SelectProfile(
        accounts_pb2.SelectProfileRequest(profile=kids.profile.name, refresh_token=up.tokens.refresh_token), metadata=md
    )
    return Household(up, kids.profile, bearer(selected.tokens.access_token), selected.tokens.refresh_token)


async def _denied(call: Any, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
    info = error_info(err.value)
    assert info is not None and info.reason == reason, info


async def test_a_kids_profile_changes_nothing_on_the_account(client: Client) -> None:
    h = await _household(client, "family@example.com")
    stub, account, adult = client.stub, h.up.account.name, h.up.profile.name
    grown_up = accounts_pb2.Profile(
        name=h.kids.name, display_name="Kids", kids=False, maturity_limit=common_pb2.MATURITY_RATING_ADULT
    )
    calls: list[Callable[[], Any]] = [  # made one at a time (a grpc.aio call starts when it is created)
        lambda: stub.UpdateProfile(accounts_pb2.UpdateProfileRequest(profile=grown_up), metadata=h.kids_md),
        lambda: stub.UpdateProfile(
            accounts_pb2.UpdateProfileRequest(
                profile=accounts_pb2.Profile(name=adult, display_name="Mine now"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
            metadata=h.kids_md,
        ),
        lambda: stub.CreateProfile(
            accounts_pb2.CreateProfileRequest(parent=account, profile=accounts_pb2.Profile(display_name="Grown-up")),
            metadata=h.kids_md,
        ),
        lambda: stub.DeleteProfile(accounts_pb2.DeleteProfileRequest(name=adult), metadata=h.kids_md),
        lambda: stub.UpdateAccount(
            accounts_pb2.UpdateAccountRequest(
                account=accounts_pb2.Account(name=account, plan="plans/premium"),
                update_mask=field_mask_pb2.FieldMask(paths=["plan"]),
            ),
            metadata=h.kids_md,
        ),
        lambda: stub.DeleteAccount(accounts_pb2.DeleteAccountRequest(name=account), metadata=h.kids_md),
        lambda: stub.RevokeAllSessions(accounts_pb2.RevokeAllSessionsRequest(account=account), metadata=h.kids_md),
        lambda: stub.RegisterDevice(
            accounts_pb2.RegisterDeviceRequest(
                parent=account, device=accounts_pb2.Device(display_name="Tablet", type=common_pb2.DEVICE_TYPE_TABLET)
            ),
            metadata=h.kids_md,
        ),
        lambda: stub.DeleteDevice(
            accounts_pb2.DeleteDeviceRequest(name=f"{account}/devices/000000000000000000000000"), metadata=h.kids_md
        ),
        lambda: stub.ChangePassword(
            accounts_pb2.ChangePasswordRequest(account=account, current_password="guess", new_password="x" * 12),
            metadata=h.kids_md,
        ),
    ]
    for call in calls:
        await _denied(call(), "KIDS_PROFILE")
    # nothing changed, and reading still works from the kids profile (the profile picker needs the list)
    kids = await stub.GetProfile(accounts_pb2.GetProfileRequest(name=h.kids.name), metadata=h.kids_md)
    assert kids.profile.kids and kids.profile.maturity_limit == common_pb2.MATURITY_RATING_KIDS_7
    got = await stub.GetAccount(accounts_pb2.GetAccountRequest(name=account), metadata=h.kids_md)
    assert got.account.plan == "plans/standard"
    listed = await stub.ListProfiles(accounts_pb2.ListProfilesRequest(parent=account), metadata=h.kids_md)
    assert len(listed.profiles) == 2


async def test_leaving_a_kids_profile_needs_the_account_password(client: Client) -> None:
    h = await _household(client, "parents@example.com")
    adult = h.up.profile.name

    def select(password: str = "", profile: str = adult, refresh: str = "") -> Any:
        request = accounts_pb2.SelectProfileRequest(profile=profile, refresh_token=refresh, password=password)
        return client.stub.SelectProfile(request, metadata=h.kids_md)

    await _denied(select(), "PASSWORD_REQUIRED")
    await _denied(select(refresh=h.kids_refresh), "PASSWORD_REQUIRED")  # rotating the session is no way out
    await _denied(select("not the password"), "INVALID_CREDENTIALS")
    # staying on the kids profile needs nothing
    stay = await select(profile=h.kids.name)
    assert client.tokens.verify(stay.tokens.access_token).kids
    left = await select(PASSWORD, refresh=h.kids_refresh)
    principal = client.tokens.verify(left.tokens.access_token)
    assert (principal.profile_id, principal.kids) == (adult.rsplit("/", 1)[1], False)
    # from the adult profile again, changes work
    await client.stub.UpdateProfile(
        accounts_pb2.UpdateProfileRequest(
            profile=accounts_pb2.Profile(name=h.kids.name, display_name="Little ones"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        metadata=bearer(left.tokens.access_token),
    )
