"""Accounts and credentials: sign up, sign in and password change (password attempts rate limited per account),
account read/update/delete."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from marquee.v1 import accounts_pb2
from services.accounts import schema, validation
from services.accounts.config import AccountsConfig
from services.accounts.passwords import Passwords
from services.accounts.records import AccountRecord
from services.accounts.refresh import RefreshTokens
from services.common.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted, Unauthenticated
from services.common.ids import new_id, now_micros
from services.common.plans import Plans
from services.common.ratelimit import Rate, RateLimiter
from services.common.store.port import Store

log = logging.getLogger("marquee.accounts")


@dataclass(frozen=True)
class NewAccount:
    email: str
    password: str
    display_name: str
    plan: str


class Identity:
    def __init__(
        self,
        store: Store,
        config: AccountsConfig,
        plans: Plans,
        passwords: Passwords,
        refresh: RefreshTokens,
        limiter: RateLimiter,
    ) -> None:
        self._store = store
        self._config = config
        self._plans = plans
        self._passwords = passwords
        self._refresh = refresh
        self._limiter = limiter

    def check_plan(self, plan_id: str, field: str = "plan") -> str:
        if not plan_id:
            return self._config.default_plan
        if plan_id not in self._plans:
            known = ", ".join(self._plans.ids())
            raise InvalidArgument(f"{field} {plan_id[:64]!r} is not a plan (plans: {known})", field_name=field)
        return plan_id

    async def sign_up(self, new: NewAccount, *, client_address: str, roles: tuple[str, ...] = ()) -> AccountRecord:
        email = validation.email(new.email)
        validation.password(
            new.password, min_length=self._config.passwords.min_length, max_length=self._config.passwords.max_length
        )
        display = validation.display_name(new.display_name or email.split("@")[0], "display_name")
        plan = self.check_plan(new.plan)
        await self._limit("sign-up", client_address, self._config.sign_up_per_address)
        account_id = new_id()
        if not await self._store.insert(
            schema.ACCOUNT_EMAILS, {"email": email, "account_id": account_id}, if_not_exists=True
        ):
            raise AlreadyExists("an account with this email already exists", reason="EMAIL_TAKEN")
        now = now_micros()
        row = {
            "account_id": account_id,
            "email": email,
            "display_name": display,
            "plan": plan,
            "password_hash": await self._passwords.hash(new.password),
            "roles": list(roles),
            "profile_count": 0,
            "device_count": 0,
            "create_time": now,
            "update_time": now,
        }
        await self._store.insert(schema.ACCOUNTS, row)
        log.info("account created", extra={"account": account_id})
        return AccountRecord.from_row(row)

    async def sign_in(self, email: str, password: str, *, client_address: str) -> AccountRecord:
        """The account for valid credentials. Failed and successful attempts both count against the limits."""
        normalized = validation.email(email)
        await self._limit("sign-in-address", client_address, self._config.sign_in_per_address)
        await self._limit_password_attempts(normalized)
        mapping = await self._store.get(schema.ACCOUNT_EMAILS, {"email": normalized})
        account = await self.find(mapping["account_id"]) if mapping else None
        ok = await self._passwords.verify(account.password_hash if account else None, password)
        if account is None or not ok:
            raise Unauthenticated("email or password is incorrect", reason="INVALID_CREDENTIALS")
        if self._passwords.needs_rehash(account.password_hash):
            await self._store.update(
                schema.ACCOUNTS,
                {"account_id": account.account_id},
                {"password_hash": await self._passwords.hash(password)},
            )
        return account

    async def _limit_password_attempts(self, email: str) -> None:
        """One budget of password attempts per account (``sign_in_per_account``), whichever call makes them: SignIn,
        ChangePassword, leaving a kids profile. Every attempt counts, right or wrong, so the limit tells nothing."""
        await self._limit("password-account", email, self._config.sign_in_per_account)

    async def check_password(self, account: AccountRecord, password: str) -> bool:
        """Whether ``password`` is the account's, as one attempt against the account's limit."""
        await self._limit_password_attempts(account.email)
        return await self._passwords.verify(account.password_hash, password)

    async def _limit(self, scope: str, key: str, rate: Rate) -> None:
        decision = await self._limiter.hit(f"accounts:{scope}:{key}", rate)
        if not decision.allowed:
            raise ResourceExhausted(
                f"too many attempts; retry in {decision.retry_after:.0f} s",
                reason="RATE_LIMITED",
                retry_after=decision.retry_after,
            )

    async def find(self, account_id: str) -> AccountRecord | None:
        row = await self._store.get(schema.ACCOUNTS, {"account_id": account_id})
        return AccountRecord.from_row(row) if row else None

    async def get(self, account_id: str) -> AccountRecord:
        account = await self.find(account_id)
        if account is None:
            raise NotFound(f"account accounts/{account_id} does not exist", reason="ACCOUNT_NOT_FOUND")
        return account

    async def update(self, account_id: str, *, display_name: str | None, plan: str | None) -> AccountRecord:
        await self.get(account_id)
        values: dict[str, object] = {"update_time": now_micros()}
        if display_name is not None:
            values["display_name"] = validation.display_name(display_name, "account.display_name")
        if plan is not None:
            values["plan"] = self.check_plan(plan, "account.plan")
        await self._store.update(schema.ACCOUNTS, {"account_id": account_id}, values, if_exists=True)
        return await self.get(account_id)

    async def change_password(self, account_id: str, current: str, new: str) -> None:
        account = await self.get(account_id)
        validation.password(
            new,
            min_length=self._config.passwords.min_length,
            max_length=self._config.passwords.max_length,
            field="new_password",
        )
        if not await self.check_password(account, current):
            raise InvalidArgument("current_password is incorrect", field_name="current_password")
        await self._store.update(
            schema.ACCOUNTS,
            {"account_id": account_id},
            {"password_hash": await self._passwords.hash(new), "update_time": now_micros()},
        )
        await self._refresh.revoke_all(account_id, accounts_pb2.REVOCATION_REASON_PASSWORD_CHANGED)

    async def delete(self, account_id: str) -> None:
        account = await self.get(account_id)
        await self._refresh.revoke_all(account_id, accounts_pb2.REVOCATION_REASON_ACCOUNT_DELETED)
        for table in (schema.PROFILES, schema.PROFILE_NAMES, schema.DEVICES):
            await self._store.delete(table, {"account_id": account_id})
        await self._store.delete(schema.ACCOUNTS, {"account_id": account_id})
        await self._store.delete(schema.ACCOUNT_EMAILS, {"email": account.email})
        log.info("account deleted", extra={"account": account_id})
