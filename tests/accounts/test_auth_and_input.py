"""Authorization on every non-public RPC (enumerated from the descriptors), bad input, rate limits, secrets."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf import message as pb_message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pydantic import SecretStr

from marquee.v1 import accounts_pb2, common_pb2
from services.accounts.servicer import PUBLIC_METHODS, SERVICE_NAME
from services.common.auth import AccessTokens
from services.common.config import AuthConfig
from services.common.errors import error_info
from services.common.ratelimit import Rate
from tests.accounts.conftest import AUTH, PASSWORD, Client, accounts_config, bearer

SERVICE = accounts_pb2.DESCRIPTOR.services_by_name["AccountService"]
PROTECTED = [m for m in SERVICE.methods if f"/{SERVICE_NAME}/{m.name}" not in PUBLIC_METHODS]


def test_public_methods_are_exactly_the_sign_in_flows() -> None:
    assert {m.rsplit("/", 1)[1] for m in PUBLIC_METHODS} == {
        "SignUp",
        "SignIn",
        "RefreshTokens",
        "SignOut",
        "ListPlans",
        "GetPlan",
    }
    assert len(PROTECTED) == len(SERVICE.methods) - 6


def _request_for(method: Any, account: str) -> pb_message.Message:
    """A request for ``method`` that names resources of ``account``."""
    cls = accounts_pb2.DESCRIPTOR.message_types_by_name[method.input_type.name]._concrete_class  # type: ignore[attr-defined]
    req = cls()
    ids = {
        "account": account,
        "parent": account,
        "profile": f"{account}/profiles/000000000000000000000000",
        "device": f"{account}/devices/000000000000000000000000",
    }
    for field in method.input_type.fields:
        if field.name in ids and field.type == field.TYPE_STRING:
            setattr(req, field.name, ids[field.name])
        elif field.name == "name":
            if "Profile" in method.name:
                req.name = ids["profile"]
            elif "Device" in method.name:
                req.name = ids["device"]
            else:
                req.name = account
        elif field.name == "account" and field.type == field.TYPE_MESSAGE:
            req.account.name = account
        elif field.name == "profile" and field.type == field.TYPE_MESSAGE:
            req.profile.name = ids["profile"]
            req.profile.display_name = "X"
        elif field.name == "device" and field.type == field.TYPE_MESSAGE:
            req.device.display_name = "X"
    if method.name == "CreateProfile":
        req.profile.name = ""
    assert isinstance(req, pb_message.Message)
    return req


async def _call(client: Client, method: Any, request: pb_message.Message, md: Any) -> grpc.aio.AioRpcError | None:
    rpc = getattr(client.stub, method.name)
    try:
        await rpc(request, metadata=md, timeout=10)
    except grpc.aio.AioRpcError as err:
        return err
    return None


async def test_every_protected_rpc_rejects_bad_tokens(client: Client) -> None:
    victim = await client.sign_up("victim@example.com")
    attacker = await client.sign_up("attacker@example.com")
    tokens = AccessTokens(AUTH)
    victim_id = victim.account.name.split("/")[1]
    expired = tokens.issue(victim_id, now=time.time() - 7200).token
    forged = AccessTokens(AuthConfig(keys={"k1": SecretStr("f" * 40)}, signing_kid="k1")).issue(victim_id).token
    wrong_kid = (
        AccessTokens(AuthConfig(keys={"k2": SecretStr("accounts-test-signing-key-0123456789abcdef")}, signing_kid="k2"))
        .issue(victim_id)
        .token
    )
    cases: list[tuple[str, Any, grpc.StatusCode]] = [
        ("missing", (), grpc.StatusCode.UNAUTHENTICATED),
        ("not bearer", (("authorization", "Token abc"),), grpc.StatusCode.UNAUTHENTICATED),
        ("garbage", bearer("x.y.z"), grpc.StatusCode.UNAUTHENTICATED),
        ("expired", bearer(expired), grpc.StatusCode.UNAUTHENTICATED),
        ("forged", bearer(forged), grpc.StatusCode.UNAUTHENTICATED),
        ("unknown key id", bearer(wrong_kid), grpc.StatusCode.UNAUTHENTICATED),
        ("other account", bearer(attacker.tokens.access_token), grpc.StatusCode.PERMISSION_DENIED),
    ]
    assert PROTECTED
    for method in PROTECTED:
        request = _request_for(method, victim.account.name)
        for label, md, expected in cases:
            err = await _call(client, method, request, md)
            assert err is not None, f"{method.name} accepted a {label} token"
            assert err.code() == expected, f"{method.name} with {label} token: {err.code()} {err.details()}"
    # the victim's account is untouched
    got = await client.stub.GetAccount(
        accounts_pb2.GetAccountRequest(name=victim.account.name), metadata=bearer(victim.tokens.access_token)
    )
    assert got.account.email == "victim@example.com"


def _violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    fields = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


@pytest.mark.parametrize(
    ("email", "password", "display", "field", "words"),
    [
        ("not-an-email", PASSWORD, "x", "email", "not a valid email"),
        ("a@b", PASSWORD, "x", "email", "not a valid email"),
        ("", PASSWORD, "x", "email", "required"),
        ("x" * 250 + "@example.com", PASSWORD, "x", "email", "longer than 254"),
        ("sp ace@example.com", PASSWORD, "x", "email", "not a valid email"),
        ("ok@example.com", "short", "x", "password", "at least 8"),
        ("ok@example.com", "p" * 129, "x", "password", "at most 128"),
        ("ok@example.com", PASSWORD, "d" * 101, "display_name", "longer than 100"),
        ("ok@example.com", PASSWORD, "bad\x07name", "display_name", "control characters"),
    ],
)
async def test_sign_up_input_errors(
    client: Client, email: str, password: str, display: str, field: str, words: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.stub.SignUp(accounts_pb2.SignUpRequest(email=email, password=password, display_name=display))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (err.value.details() or "")
    assert _violations(err.value) == [field]


async def test_resource_and_paging_errors(client: Client) -> None:
    up = await client.sign_up("input@example.com")
    md = bearer(up.tokens.access_token)
    stub = client.stub
    cases: list[tuple[Any, grpc.StatusCode, str]] = [
        (
            stub.GetAccount(accounts_pb2.GetAccountRequest(name="users/1"), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a valid resource name",
        ),
        (
            stub.GetAccount(accounts_pb2.GetAccountRequest(name=""), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "name is required",
        ),
        (
            stub.ListDevices(accounts_pb2.ListDevicesRequest(parent=up.account.name, page_size=-1), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_size must not be negative",
        ),
        (
            stub.ListDevices(
                accounts_pb2.ListDevicesRequest(parent=up.account.name, page_token="garbage!!"), metadata=md
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        ),
        (
            stub.ListPlans(accounts_pb2.ListPlansRequest(page_token="AAAA" * 10)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        ),
        (
            stub.GetProfile(
                accounts_pb2.GetProfileRequest(name=f"{up.account.name}/profiles/ffffffffffffffffffffffff"), metadata=md
            ),
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        ),
        (
            stub.GetDevice(
                accounts_pb2.GetDeviceRequest(name=f"{up.account.name}/devices/ffffffffffffffffffffffff"), metadata=md
            ),
            grpc.StatusCode.NOT_FOUND,
            "does not exist",
        ),
        (
            stub.CreateProfile(
                accounts_pb2.CreateProfileRequest(
                    parent=up.account.name, profile=accounts_pb2.Profile(display_name="x" * 51)
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "longer than 50",
        ),
        (
            stub.CreateProfile(
                accounts_pb2.CreateProfileRequest(
                    parent=up.account.name,
                    profile=accounts_pb2.Profile(
                        display_name="K", kids=True, maturity_limit=common_pb2.MATURITY_RATING_ADULT
                    ),
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "children's rating",
        ),
        (
            stub.CreateProfile(
                accounts_pb2.CreateProfileRequest(
                    parent=up.account.name,
                    profile=accounts_pb2.Profile(display_name="M", maturity_limit=99),  # type: ignore[arg-type]
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a MaturityRating",
        ),
        (
            stub.CreateProfile(
                accounts_pb2.CreateProfileRequest(
                    parent=up.account.name, profile=accounts_pb2.Profile(display_name="L", language="not a tag")
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BCP 47",
        ),
        (
            stub.UpdateAccount(
                accounts_pb2.UpdateAccountRequest(
                    account=accounts_pb2.Account(name=up.account.name, email="x@y.z"),
                    update_mask=field_mask_pb2.FieldMask(paths=["email"]),
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "cannot be updated",
        ),
        (
            stub.UpdateAccount(
                accounts_pb2.UpdateAccountRequest(
                    account=accounts_pb2.Account(name=up.account.name, plan="plans/gold"),
                    update_mask=field_mask_pb2.FieldMask(paths=["plan"]),
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "is not a plan",
        ),
        (
            stub.RegisterDevice(
                accounts_pb2.RegisterDeviceRequest(
                    parent=up.account.name,
                    device=accounts_pb2.Device(display_name="", type=common_pb2.DEVICE_TYPE_PHONE),
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "required",
        ),
        (
            stub.RegisterDevice(
                accounts_pb2.RegisterDeviceRequest(
                    parent=up.account.name,
                    device=accounts_pb2.Device(display_name="d", type=42),  # type: ignore[arg-type]
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a DeviceType",
        ),
        (
            stub.SignUp(accounts_pb2.SignUpRequest(email="input@example.com", password=PASSWORD)),
            grpc.StatusCode.ALREADY_EXISTS,
            "already exists",
        ),
        (
            stub.SignUp(accounts_pb2.SignUpRequest(email="new@example.com", password=PASSWORD, plan="plans/nope")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "is not a plan",
        ),
        (
            stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token="r" * 1000)),
            grpc.StatusCode.UNAUTHENTICATED,
            "malformed",
        ),
        (
            stub.ChangePassword(
                accounts_pb2.ChangePasswordRequest(
                    account=up.account.name, current_password="wrong password", new_password="another good one"
                ),
                metadata=md,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "current_password is incorrect",
        ),
    ]
    for call, code, words in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == code, (words, err.value.details())
        assert words in (err.value.details() or ""), (words, err.value.details())
    # oversized message: refused by the transport limit, the server stays up
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SignIn(accounts_pb2.SignInRequest(email="x" * (5 * 1024 * 1024), password="p"))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await stub.ListPlans(accounts_pb2.ListPlansRequest())).plans


@pytest.fixture
def config() -> Any:
    # tight sign-in limits for the rate-limit test (other tests in this module do not sign in repeatedly)
    return accounts_config(sign_in_per_account=Rate(limit=3, period=60))


async def test_sign_in_is_rate_limited_per_account(client: Client) -> None:
    await client.sign_up("limited@example.com")
    outcomes = []
    for _ in range(5):
        try:
            await client.stub.SignIn(accounts_pb2.SignInRequest(email="limited@example.com", password="wrong guess!"))
        except grpc.aio.AioRpcError as err:
            outcomes.append(err)
    assert [e.code() for e in outcomes] == [grpc.StatusCode.UNAUTHENTICATED] * 3 + [
        grpc.StatusCode.RESOURCE_EXHAUSTED
    ] * 2
    info = error_info(outcomes[-1])
    assert info is not None and info.reason == "RATE_LIMITED"
    status = rpc_status.from_call(outcomes[-1])  # type: ignore[arg-type]
    assert status is not None
    assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    # even the right password is refused while limited; another account is not affected
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await client.stub.SignIn(accounts_pb2.SignInRequest(email="limited@example.com", password=PASSWORD))
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await client.sign_up("free@example.com")
    await client.stub.SignIn(accounts_pb2.SignInRequest(email="free@example.com", password=PASSWORD))


async def test_secrets_never_reach_the_logs(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    from services.common.logs import JsonFormatter, RedactingFilter

    caplog.set_level(logging.DEBUG)
    up = await client.sign_up("quiet@example.com")
    signed = await client.stub.SignIn(accounts_pb2.SignInRequest(email="quiet@example.com", password=PASSWORD))
    first = signed.tokens.refresh_token
    await client.stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=first))
    with pytest.raises(grpc.aio.AioRpcError):
        await client.stub.RefreshTokens(accounts_pb2.RefreshTokensRequest(refresh_token=first))  # reuse: logged
    formatter, redact = JsonFormatter(), RedactingFilter()
    lines = []
    for record in caplog.records:
        redact.filter(record)
        lines.append(formatter.format(record))
    text = "\n".join(lines)
    assert "rpc" in text and "SignIn" in text  # the access log ran
    for secret in (PASSWORD, up.tokens.access_token, up.tokens.refresh_token, first, signed.tokens.access_token):
        assert secret not in text
