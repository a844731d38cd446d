"""The all-in-one's demo account: created once on first start (idempotently: a restart finds it), with a few
profiles, so the web player can be signed in to at once. `marquee up` prints its email and password."""

from __future__ import annotations

import logging

from services.accounts import schema, validation
from services.accounts.config import AccountsConfig
from services.accounts.identity import Identity, NewAccount
from services.accounts.passwords import Passwords
from services.accounts.profiles import ProfileInput, Profiles
from services.accounts.refresh import RefreshTokens
from services.accounts.servicer import KIDS_MAX_MATURITY
from services.common.errors import AlreadyExists
from services.common.plans import Plans
from services.common.ratelimit import InMemoryRateLimiter
from services.common.store.port import Store

log = logging.getLogger("marquee.accounts")

ADULT = 6  # MATURITY_RATING_ADULT


async def seed_demo_account(store: Store, config: AccountsConfig, refresh_ttl: int, plans: Plans) -> bool:
    """Creates the demo account and its profiles unless its email is taken; True when it was created."""
    demo = config.demo
    if await store.get(schema.ACCOUNT_EMAILS, {"email": validation.email(demo.email)}) is not None:
        return False
    identity = Identity(
        store,
        config,
        plans,
        Passwords(config.passwords),
        RefreshTokens(store, refresh_ttl, None),
        InMemoryRateLimiter(),
    )
    try:
        account = await identity.sign_up(
            NewAccount(demo.email, demo.password.get_secret_value(), "Demo", demo.plan or config.default_plan),
            client_address="demo",
        )
    except AlreadyExists:  # another replica made it first
        return False
    profiles = Profiles(store, config.max_profiles, KIDS_MAX_MATURITY)
    for name in demo.profiles:
        await profiles.create(account.account_id, ProfileInput(name, False, ADULT, "", ""))
    if demo.kids_profile:
        await profiles.create(account.account_id, ProfileInput(demo.kids_profile, True, KIDS_MAX_MATURITY, "", ""))
    log.info("demo account created", extra={"account": account.account_id})
    return True
