"""`marquee accounts ...`: administration of accounts on the platform's store (works while `up` runs).

marquee accounts create --email E [--password-stdin] [--display-name N] [--plan P] [--admin]
marquee accounts show --email E
marquee accounts set-plan --email E --plan P
marquee accounts grant-admin --email E
marquee accounts revoke-sessions --email E
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from marquee.v1 import accounts_pb2
from services.accounts import schema, validation
from services.accounts.config import AccountsConfig
from services.accounts.identity import Identity, NewAccount
from services.accounts.passwords import Passwords
from services.accounts.profiles import ProfileInput, Profiles
from services.accounts.records import AccountRecord
from services.accounts.refresh import RefreshTokens
from services.accounts.servicer import KIDS_MAX_MATURITY
from services.common.errors import ServiceError
from services.common.plans import Plans
from services.common.ratelimit import InMemoryRateLimiter
from services.common.store.port import Store
from services.platform.cli import platform_config
from services.platform.runtime import local_config, platform_store

NAME = "accounts"


class _Admin:
    def __init__(self, store: Store, config: AccountsConfig, plans: Plans, refresh_ttl: int) -> None:
        self.store = store
        self.config = config
        self.refresh = RefreshTokens(store, refresh_ttl, None)
        self.identity = Identity(store, config, plans, Passwords(config.passwords), self.refresh, InMemoryRateLimiter())

    async def by_email(self, email: str) -> AccountRecord:
        row = await self.store.get(schema.ACCOUNT_EMAILS, {"email": validation.email(email)})
        if row is None:
            raise SystemExit(f"no account with email {email}")
        return await self.identity.get(row["account_id"])


def _describe(a: AccountRecord) -> str:
    return json.dumps(
        {
            "name": f"accounts/{a.account_id}",
            "email": a.email,
            "display_name": a.display_name,
            "plan": a.plan,
            "roles": list(a.roles),
            "profiles": a.profile_count,
            "devices": a.device_count,
        }
    )


def _run(args: argparse.Namespace, action: Callable[[_Admin, argparse.Namespace], Awaitable[str]]) -> int:
    platform = local_config(platform_config(args))
    platform.data_dir.mkdir(parents=True, exist_ok=True)
    config = platform.service(NAME, AccountsConfig)

    async def go() -> str:
        store = platform_store(platform)
        try:
            await store.migrate(schema.SCHEMA)
            return await action(_Admin(store, config, Plans(platform.plans), platform.auth.refresh_token_ttl), args)
        finally:
            await store.close()

    try:
        print(asyncio.run(go()))
    except ServiceError as err:
        print(f"marquee accounts: {err.message}", file=sys.stderr)
        return 1
    return 0


async def _create(admin: _Admin, args: argparse.Namespace) -> str:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    account = await admin.identity.sign_up(
        NewAccount(args.email, password, args.display_name or "", args.plan or ""),
        client_address="cli",
        roles=("admin",) if args.admin else (),
    )
    profiles = Profiles(admin.store, admin.config.max_profiles, KIDS_MAX_MATURITY)
    await profiles.create(
        account.account_id,
        ProfileInput(display_name=account.display_name[:50], kids=False, maturity_limit=6, language="", avatar_uri=""),
    )
    return _describe(await admin.identity.get(account.account_id))


async def _show(admin: _Admin, args: argparse.Namespace) -> str:
    return _describe(await admin.by_email(args.email))


async def _set_plan(admin: _Admin, args: argparse.Namespace) -> str:
    account = await admin.by_email(args.email)
    return _describe(await admin.identity.update(account.account_id, display_name=None, plan=args.plan))


async def _grant_admin(admin: _Admin, args: argparse.Namespace) -> str:
    account = await admin.by_email(args.email)
    roles = sorted({*account.roles, "admin"})
    await admin.store.update(schema.ACCOUNTS, {"account_id": account.account_id}, {"roles": roles}, if_exists=True)
    return _describe(await admin.identity.get(account.account_id))


async def _revoke(admin: _Admin, args: argparse.Namespace) -> str:
    account = await admin.by_email(args.email)
    revoked = await admin.refresh.revoke_all(account.account_id, accounts_pb2.REVOCATION_REASON_ALL_SESSIONS_REVOKED)
    return json.dumps(
        {
            "revoked_sessions": revoked,
            "note": "refresh tokens are revoked; access tokens already issued stay valid until they expire "
            "(auth.access_token_ttl): RevokeAllSessions on the running platform refuses them at once",
        }
    )


def register(sub: Any) -> None:
    parser = sub.add_parser(NAME, help="administer accounts")
    commands = parser.add_subparsers(dest="accounts_command", required=True)
    actions: list[tuple[str, str, Callable[[_Admin, argparse.Namespace], Awaitable[str]]]] = [
        ("create", "create an account (password from the terminal or --password-stdin)", _create),
        ("show", "show an account", _show),
        ("set-plan", "change an account's plan", _set_plan),
        ("grant-admin", "give an account the admin role", _grant_admin),
        ("revoke-sessions", "sign an account out everywhere", _revoke),
    ]
    for name, help_text, action in actions:
        p = commands.add_parser(name, help=help_text)
        p.add_argument("--email", required=True)
        if name == "create":
            p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
            p.add_argument("--display-name", default="")
            p.add_argument("--plan", default="")
            p.add_argument("--admin", action="store_true", help="grant the admin role")
        if name == "set-plan":
            p.add_argument("--plan", required=True)
        p.set_defaults(func=lambda a, act=action: _run(a, act))
