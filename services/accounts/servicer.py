"""AccountService over gRPC: maps protobuf to the accounts domain and back, and checks who may do what."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import field_mask_pb2, timestamp_pb2

from marquee.v1 import accounts_pb2, accounts_pb2_grpc, common_pb2
from services.accounts.config import AccountsConfig
from services.accounts.devices import Devices
from services.accounts.identity import Identity, NewAccount
from services.accounts.profiles import ProfileInput, Profiles
from services.accounts.records import AccountRecord, DeviceRecord, ProfileRecord
from services.accounts.refresh import RefreshGrant, RefreshTokens
from services.common.auth import AccessTokens, require_account
from services.common.context import Principal
from services.common.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from services.common.geo import Geo
from services.common.names import NamePattern
from services.common.paging import PageTokens, page_size, query_fingerprint
from services.common.peer import caller_address
from services.common.plans import Plan, Plans
from services.common.timevalues import timestamp_of

ACCOUNT = NamePattern("accounts/{account}")
PROFILE = NamePattern("accounts/{account}/profiles/{profile}")
DEVICE = NamePattern("accounts/{account}/devices/{device}")
PLAN = NamePattern("plans/{plan}")

SERVICE_NAME = accounts_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name
PUBLIC_METHODS = frozenset(
    f"/{SERVICE_NAME}/{m}" for m in ("SignUp", "SignIn", "RefreshTokens", "SignOut", "ListPlans", "GetPlan")
)
KIDS_MAX_MATURITY = common_pb2.MATURITY_RATING_KIDS_7
_MATURITY_VALUES = frozenset(common_pb2.MaturityRating.values()) - {common_pb2.MATURITY_RATING_UNSPECIFIED}
_DEVICE_TYPES = frozenset(common_pb2.DeviceType.values())
PROFILE_MUTABLE = ("display_name", "kids", "maturity_limit", "language", "avatar_uri")
ACCOUNT_MUTABLE = ("display_name", "plan")


def _ts_seconds(seconds: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromSeconds(seconds)
    return ts


def _not_kids(principal: Principal) -> None:
    """PERMISSION_DENIED when the caller's token is for a kids profile: it may not change the account, its plan,
    profiles, devices or sessions (leaving it, SelectProfile with the password, is the way out)."""
    if principal.kids:
        raise PermissionDenied(
            "a kids profile cannot change the account, its plan, profiles, devices or sessions: switch to another "
            "profile (with the account's password) first",
            reason="KIDS_PROFILE",
        )


def _mask_paths(mask: field_mask_pb2.FieldMask, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The mask's paths (all updatable fields when empty); INVALID_ARGUMENT for anything else."""
    paths = tuple(mask.paths) or allowed
    bad = [p for p in paths if p not in allowed]
    if bad:
        raise InvalidArgument(
            f"update_mask has fields that cannot be updated: {', '.join(bad)} (updatable: {', '.join(allowed)})",
            field_name="update_mask",
        )
    return paths


class AccountServicer(accounts_pb2_grpc.AccountServiceServicer):
    def __init__(
        self,
        config: AccountsConfig,
        plans: Plans,
        identity: Identity,
        profiles: Profiles,
        devices: Devices,
        refresh: RefreshTokens,
        access: AccessTokens,
        page_tokens: PageTokens,
        geo: Geo,
    ) -> None:
        self._config = config
        self._geo = geo
        self._plans = plans
        self._identity = identity
        self._profiles = profiles
        self._devices = devices
        self._refresh = refresh
        self._access = access
        self._pages = page_tokens

    # -- mapping ----------------------------------------------------------------------------------------------

    @staticmethod
    def _account_pb(a: AccountRecord) -> accounts_pb2.Account:
        return accounts_pb2.Account(
            name=ACCOUNT.format(account=a.account_id),
            email=a.email,
            display_name=a.display_name,
            plan=PLAN.format(plan=a.plan),
            roles=list(a.roles),
            create_time=timestamp_of(a.create_time),
            update_time=timestamp_of(a.update_time),
        )

    @staticmethod
    def _profile_pb(p: ProfileRecord) -> accounts_pb2.Profile:
        return accounts_pb2.Profile(
            name=PROFILE.format(account=p.account_id, profile=p.profile_id),
            display_name=p.display_name,
            kids=p.kids,
            maturity_limit=p.maturity_limit,  # type: ignore[arg-type]
            language=p.language,
            avatar_uri=p.avatar_uri,
            create_time=timestamp_of(p.create_time),
            update_time=timestamp_of(p.update_time),
        )

    @staticmethod
    def _device_pb(d: DeviceRecord) -> accounts_pb2.Device:
        return accounts_pb2.Device(
            name=DEVICE.format(account=d.account_id, device=d.device_id),
            display_name=d.display_name,
            type=d.type,  # type: ignore[arg-type]
            create_time=timestamp_of(d.create_time),
            last_seen_time=timestamp_of(d.last_seen_time),
        )

    @staticmethod
    def _plan_pb(p: Plan) -> accounts_pb2.Plan:
        return accounts_pb2.Plan(
            name=PLAN.format(plan=p.id),
            display_name=p.display_name,
            max_concurrent_streams=p.max_concurrent_streams,
            max_resolution_height=p.max_resolution_height,
            max_devices=p.max_devices,
            monthly_price_minor=p.monthly_price_cents,
            currency_code=p.currency,
        )

    async def _tokens(self, account: AccountRecord, grant: RefreshGrant) -> accounts_pb2.TokenPair:
        profile = None
        if grant.profile_id:
            try:
                profile = await self._profiles.get(account.account_id, grant.profile_id)
            except NotFound:
                raise Unauthenticated("the profile no longer exists", reason="INVALID_TOKEN") from None
        access = self._access.issue(
            account.account_id,
            profile_id=grant.profile_id or None,
            device_id=grant.device_id or None,
            session_id=grant.family_id,
            profile_name=profile.display_name if profile else None,
            kids=profile.kids if profile else False,
            roles=account.roles,
            plan=account.plan,
            max_maturity=profile.maturity_limit if profile else None,
        )
        return accounts_pb2.TokenPair(
            access_token=access.token,
            access_token_expire_time=_ts_seconds(access.expires_at),
            refresh_token=grant.token,
            refresh_token_expire_time=_ts_seconds(grant.expires_at),
        )

    def _maturity(self, value: int, kids: bool, field: str) -> int:
        if value == common_pb2.MATURITY_RATING_UNSPECIFIED:
            return KIDS_MAX_MATURITY if kids else common_pb2.MATURITY_RATING_ADULT
        if value not in _MATURITY_VALUES:
            raise InvalidArgument(f"{field} {value} is not a MaturityRating", field_name=field)
        return value

    def _plan_id(self, name: str, field: str) -> str:
        if not name:
            return ""
        plan_id = PLAN.parse(name, field)["plan"]
        if self._plans.get(plan_id) is None:
            raise InvalidArgument(f"{field} {name!r} is not a plan", field_name=field)
        return plan_id

    def _required_plan(self, name: str) -> str:
        if not name:
            raise InvalidArgument("account.plan is required when the mask names it", field_name="account.plan")
        return self._plan_id(name, "account.plan")

    async def _own_account(self, name: str, field: str = "name") -> tuple[Principal, str]:
        account_id = ACCOUNT.parse(name, field)["account"]
        return require_account(account_id), account_id

    async def _managed_account(self, name: str, field: str = "name") -> str:
        """The caller's own account, to change: not from a kids profile."""
        principal, account_id = await self._own_account(name, field)
        _not_kids(principal)
        return account_id

    async def _leave_kids_profile(self, account_id: str, password: str) -> None:
        """Leaving a kids profile takes the account's password (one attempt against the account's limit)."""
        if not password:
            raise PermissionDenied("leaving a kids profile needs the account's password", reason="PASSWORD_REQUIRED")
        account = await self._identity.get(account_id)
        if not await self._identity.check_password(account, password):
            raise PermissionDenied("the password is incorrect", reason="INVALID_CREDENTIALS")

    async def _device_of(self, account_id: str, device_name: str, field: str) -> str:
        if not device_name:
            return ""
        ids = DEVICE.parse(device_name, field)
        if ids["account"] != account_id:
            raise PermissionDenied(f"{field} belongs to another account")
        await self._devices.get(account_id, ids["device"])
        return ids["device"]

    # -- sign-in and tokens -----------------------------------------------------------------------------------

    async def SignUp(
        self, request: accounts_pb2.SignUpRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.SignUpResponse:
        plan_id = self._plan_id(request.plan, "plan")
        account = await self._identity.sign_up(
            NewAccount(request.email, request.password, request.display_name, plan_id),
            client_address=caller_address(context, self._geo),
        )
        profile = await self._profiles.create(
            account.account_id,
            ProfileInput(
                display_name=account.display_name[:50],
                kids=False,
                maturity_limit=common_pb2.MATURITY_RATING_ADULT,
                language="",
                avatar_uri="",
            ),
        )
        grant = await self._refresh.start_family(account.account_id)
        account = await self._identity.get(account.account_id)
        return accounts_pb2.SignUpResponse(
            account=self._account_pb(account),
            profile=self._profile_pb(profile),
            tokens=await self._tokens(account, grant),
        )

    async def SignIn(
        self, request: accounts_pb2.SignInRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.SignInResponse:
        account = await self._identity.sign_in(
            request.email,
            request.password,
            client_address=caller_address(context, self._geo),
        )
        device_id = await self._device_of(account.account_id, request.device, "device")
        if device_id:
            await self._devices.touch(account.account_id, device_id)
        grant = await self._refresh.start_family(account.account_id, device_id=device_id)
        return accounts_pb2.SignInResponse(account=self._account_pb(account), tokens=await self._tokens(account, grant))

    async def RefreshTokens(
        self, request: accounts_pb2.RefreshTokensRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.RefreshTokensResponse:
        grant = await self._refresh.rotate(request.refresh_token)
        account = await self._identity.find(grant.account_id)
        if account is None:
            raise Unauthenticated("the account no longer exists", reason="INVALID_TOKEN")
        return accounts_pb2.RefreshTokensResponse(tokens=await self._tokens(account, grant))

    async def SignOut(
        self, request: accounts_pb2.SignOutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.SignOutResponse:
        family = await self._refresh.family_of(request.refresh_token)
        if family is not None:
            await self._refresh.revoke_family(*family, accounts_pb2.REVOCATION_REASON_SIGNED_OUT)
        return accounts_pb2.SignOutResponse()

    async def RevokeAllSessions(
        self, request: accounts_pb2.RevokeAllSessionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.RevokeAllSessionsResponse:
        account_id = await self._managed_account(request.account, "account")
        await self._identity.get(account_id)
        revoked = await self._refresh.revoke_all(account_id, accounts_pb2.REVOCATION_REASON_ALL_SESSIONS_REVOKED)
        return accounts_pb2.RevokeAllSessionsResponse(revoked_sessions=revoked)

    async def ChangePassword(
        self, request: accounts_pb2.ChangePasswordRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.ChangePasswordResponse:
        account_id = await self._managed_account(request.account, "account")
        await self._identity.change_password(account_id, request.current_password, request.new_password)
        return accounts_pb2.ChangePasswordResponse()

    # -- accounts and plans -----------------------------------------------------------------------------------

    async def GetAccount(
        self, request: accounts_pb2.GetAccountRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.GetAccountResponse:
        _, account_id = await self._own_account(request.name)
        return accounts_pb2.GetAccountResponse(account=self._account_pb(await self._identity.get(account_id)))

    async def UpdateAccount(
        self, request: accounts_pb2.UpdateAccountRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.UpdateAccountResponse:
        account_id = await self._managed_account(request.account.name, "account.name")
        paths = _mask_paths(request.update_mask, ACCOUNT_MUTABLE)
        account = await self._identity.update(
            account_id,
            display_name=request.account.display_name if "display_name" in paths else None,
            plan=self._required_plan(request.account.plan) if "plan" in paths else None,
        )
        return accounts_pb2.UpdateAccountResponse(account=self._account_pb(account))

    async def DeleteAccount(
        self, request: accounts_pb2.DeleteAccountRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.DeleteAccountResponse:
        account_id = await self._managed_account(request.name)
        await self._identity.delete(account_id)
        return accounts_pb2.DeleteAccountResponse()

    async def ListPlans(
        self, request: accounts_pb2.ListPlansRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.ListPlansResponse:
        size = page_size(request.page_size)
        fingerprint = query_fingerprint({"list": "plans"})
        state = self._pages.decode(request.page_token, fingerprint)
        start = int(state or b"0")
        plans = self._plans[start : start + size]
        more = start + size < len(self._plans)
        return accounts_pb2.ListPlansResponse(
            plans=[self._plan_pb(p) for p in plans],
            next_page_token=self._pages.encode(str(start + size).encode() if more else None, fingerprint),
        )

    async def GetPlan(
        self, request: accounts_pb2.GetPlanRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.GetPlanResponse:
        plan_id = PLAN.parse(request.name)["plan"]
        plan = self._plans.get(plan_id)
        if plan is None:
            raise NotFound(f"plan {request.name} does not exist", reason="PLAN_NOT_FOUND")
        return accounts_pb2.GetPlanResponse(plan=self._plan_pb(plan))

    # -- profiles ---------------------------------------------------------------------------------------------

    def _profile_input(self, p: accounts_pb2.Profile) -> ProfileInput:
        return ProfileInput(
            display_name=p.display_name,
            kids=p.kids,
            maturity_limit=self._maturity(p.maturity_limit, p.kids, "profile.maturity_limit"),
            language=p.language,
            avatar_uri=p.avatar_uri,
        )

    async def CreateProfile(
        self, request: accounts_pb2.CreateProfileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.CreateProfileResponse:
        account_id = await self._managed_account(request.parent, "parent")
        profile = await self._profiles.create(account_id, self._profile_input(request.profile))
        return accounts_pb2.CreateProfileResponse(profile=self._profile_pb(profile))

    async def GetProfile(
        self, request: accounts_pb2.GetProfileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.GetProfileResponse:
        ids = PROFILE.parse(request.name)
        require_account(ids["account"])
        profile = await self._profiles.get(ids["account"], ids["profile"])
        return accounts_pb2.GetProfileResponse(profile=self._profile_pb(profile))

    async def ListProfiles(
        self, request: accounts_pb2.ListProfilesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.ListProfilesResponse:
        _, account_id = await self._own_account(request.parent, "parent")
        size = page_size(request.page_size)
        fingerprint = query_fingerprint({"parent": request.parent, "list": "profiles"})
        after = self._pages.decode(request.page_token, fingerprint)
        profiles, page = await self._profiles.list(account_id, size, after)
        return accounts_pb2.ListProfilesResponse(
            profiles=[self._profile_pb(p) for p in profiles],
            next_page_token=self._pages.encode(page.next, fingerprint),
        )

    async def UpdateProfile(
        self, request: accounts_pb2.UpdateProfileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.UpdateProfileResponse:
        ids = PROFILE.parse(request.profile.name, "profile.name")
        _not_kids(require_account(ids["account"]))
        paths = _mask_paths(request.update_mask, PROFILE_MUTABLE)
        current = await self._profiles.get(ids["account"], ids["profile"])
        p = request.profile
        kids = p.kids if "kids" in paths else current.kids
        changes: dict[str, object] = {}
        for path in paths:
            if path == "maturity_limit":
                changes[path] = self._maturity(p.maturity_limit, kids, "profile.maturity_limit")
            else:
                changes[path] = getattr(p, path)
        if "kids" in paths and kids and "maturity_limit" not in paths and current.maturity_limit > KIDS_MAX_MATURITY:
            changes["maturity_limit"] = KIDS_MAX_MATURITY
        profile = await self._profiles.update(ids["account"], ids["profile"], changes)
        return accounts_pb2.UpdateProfileResponse(profile=self._profile_pb(profile))

    async def DeleteProfile(
        self, request: accounts_pb2.DeleteProfileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.DeleteProfileResponse:
        ids = PROFILE.parse(request.name)
        _not_kids(require_account(ids["account"]))
        await self._profiles.delete(ids["account"], ids["profile"])
        return accounts_pb2.DeleteProfileResponse()

    async def SelectProfile(
        self, request: accounts_pb2.SelectProfileRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.SelectProfileResponse:
        ids = PROFILE.parse(request.profile, "profile")
        principal = require_account(ids["account"])
        account_id = ids["account"]
        profile = await self._profiles.get(account_id, ids["profile"])
        if principal.kids and profile.profile_id != principal.profile_id:
            await self._leave_kids_profile(account_id, request.password)
        device_id = await self._device_of(account_id, request.device, "device")
        if request.refresh_token:
            family = await self._refresh.family_of(request.refresh_token)
            if family is None or family[0] != account_id:
                raise Unauthenticated("refresh_token does not belong to this account", reason="INVALID_TOKEN")
            grant = await self._refresh.rotate(
                request.refresh_token, profile_id=profile.profile_id, device_id=device_id or None
            )
        else:
            grant = await self._refresh.start_family(account_id, profile_id=profile.profile_id, device_id=device_id)
        if device_id:
            await self._devices.touch(account_id, device_id)
        account = await self._identity.get(account_id)
        return accounts_pb2.SelectProfileResponse(
            profile=self._profile_pb(profile), tokens=await self._tokens(account, grant)
        )

    # -- devices ----------------------------------------------------------------------------------------------

    async def RegisterDevice(
        self, request: accounts_pb2.RegisterDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.RegisterDeviceResponse:
        account_id = await self._managed_account(request.parent, "parent")
        if request.device.type not in _DEVICE_TYPES:
            raise InvalidArgument(f"device.type {request.device.type} is not a DeviceType", field_name="device.type")
        account = await self._identity.get(account_id)
        plan = self._plans.get(account.plan)
        max_devices = plan.max_devices if plan else 1
        device = await self._devices.register(account_id, request.device.display_name, request.device.type, max_devices)
        return accounts_pb2.RegisterDeviceResponse(device=self._device_pb(device))

    async def GetDevice(
        self, request: accounts_pb2.GetDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.GetDeviceResponse:
        ids = DEVICE.parse(request.name)
        require_account(ids["account"])
        return accounts_pb2.GetDeviceResponse(
            device=self._device_pb(await self._devices.get(ids["account"], ids["device"]))
        )

    async def ListDevices(
        self, request: accounts_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.ListDevicesResponse:
        _, account_id = await self._own_account(request.parent, "parent")
        size = page_size(request.page_size)
        fingerprint = query_fingerprint({"parent": request.parent, "list": "devices"})
        after = self._pages.decode(request.page_token, fingerprint)
        devices, page = await self._devices.list(account_id, size, after)
        return accounts_pb2.ListDevicesResponse(
            devices=[self._device_pb(d) for d in devices],
            next_page_token=self._pages.encode(page.next, fingerprint),
        )

    async def DeleteDevice(
        self, request: accounts_pb2.DeleteDeviceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> accounts_pb2.DeleteDeviceResponse:
        ids = DEVICE.parse(request.name)
        _not_kids(require_account(ids["account"]))
        await self._devices.remove(ids["account"], ids["device"])
        return accounts_pb2.DeleteDeviceResponse()
