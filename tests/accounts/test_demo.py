"""The all-in-one's demo account: created once with its profiles, then found again (a restart seeds nothing)."""

from __future__ import annotations

from marquee.v1 import accounts_pb2
from services.accounts.config import AccountsConfig
from services.accounts.demo import seed_demo_account
from services.common.deps import Dependencies
from tests.accounts.conftest import Client, bearer


async def test_the_demo_account_is_seeded_once_and_signs_in(
    client: Client, deps: Dependencies, config: AccountsConfig
) -> None:
    assert await seed_demo_account(deps.store, config, deps.auth.refresh_token_ttl, deps.plans)
    assert not await seed_demo_account(deps.store, config, deps.auth.refresh_token_ttl, deps.plans)
    demo = config.demo
    signed = await client.stub.SignIn(
        accounts_pb2.SignInRequest(email=demo.email, password=demo.password.get_secret_value())
    )
    assert signed.account.plan == f"plans/{config.default_plan}"
    listed = await client.stub.ListProfiles(
        accounts_pb2.ListProfilesRequest(parent=signed.account.name), metadata=bearer(signed.tokens.access_token)
    )
    names = [(p.display_name, p.kids) for p in listed.profiles]
    assert sorted(names) == sorted([*((n, False) for n in demo.profiles), (demo.kids_profile, True)])
