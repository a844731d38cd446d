"""The access-token deny list: what it denies, for how long, that it forgets expired entries, and that a process
fed from ``accounts.revoked`` denies what the accounts service denied (the multi-process path)."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from marquee.v1 import accounts_pb2
from services.accounts.revocation import AccessRevoker
from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.config import AuthConfig
from services.common.denylist import InMemoryDenyList, follow_revocations

AUTH = AuthConfig(keys={"k1": SecretStr("d" * 40)}, signing_kid="k1", access_token_ttl=900, leeway=5)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_denied_session_is_denied_until_its_tokens_expire() -> None:
    clock = Clock()
    denied = InMemoryDenyList(clock)
    await denied.deny_session("s1", until=clock.now + 900)
    assert await denied.denied("a1", "s1", clock.now - 10)
    assert not await denied.denied("a1", "s2", clock.now - 10), "another session of the same account"
    assert not await denied.denied("a1", None, clock.now - 10)
    clock.now += 900
    assert not await denied.denied("a1", "s1", clock.now - 10)
    await denied.deny_session("s3", until=clock.now + 1)  # a write forgets what expired
    assert len(denied) == 1


async def test_an_account_is_denied_for_tokens_issued_up_to_the_revocation() -> None:
    clock = Clock()
    denied = InMemoryDenyList(clock)
    revoked_at = clock.now
    await denied.deny_account("a1", issued_up_to=revoked_at, until=revoked_at + 905)
    assert await denied.denied("a1", "any", revoked_at - 0.001)
    assert await denied.denied("a1", None, revoked_at)
    assert not await denied.denied("a1", "any", revoked_at + 0.001), "signed in again just after"
    assert not await denied.denied("a2", None, revoked_at - 1)
    # a later revocation moves the mark and the expiry forward, an earlier one never back
    await denied.deny_account("a1", issued_up_to=revoked_at + 10, until=revoked_at + 915)
    await denied.deny_account("a1", issued_up_to=revoked_at - 100, until=revoked_at + 100)
    assert await denied.denied("a1", None, revoked_at + 5)
    clock.now = revoked_at + 910
    assert await denied.denied("a1", None, revoked_at + 5)
    clock.now = revoked_at + 915
    assert not await denied.denied("a1", None, revoked_at + 5)
    await denied.deny_session("s", until=clock.now + 1)
    assert len(denied) == 1


LIFETIME = 30.0  # every entry is kept for one token lifetime after the revocation, as AccessRevoker does


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["s", "a"]), st.sampled_from(["k1", "k2", "k3"]), st.floats(0, 100)),
        max_size=20,
    ),
    now=st.floats(0, 140),
    issued_at=st.floats(0, 100),
)
def test_the_list_answers_as_the_set_of_every_revocation_made(
    ops: list[tuple[str, str, float]], now: float, issued_at: float
) -> None:
    """Against a model that keeps every revocation (made at ``at``, kept until ``at`` + LIFETIME) forever: the
    list, with its merging and forgetting, denies exactly what some still-current revocation covers."""

    async def run() -> None:
        clock = Clock(0.0)
        denied = InMemoryDenyList(clock)
        for kind, key, at in sorted(ops, key=lambda op: op[2]):  # revocations happen in time order
            clock.now = at
            if kind == "s":
                await denied.deny_session(key, until=at + LIFETIME)
            else:
                await denied.deny_account(key, issued_up_to=at, until=at + LIFETIME)
        clock.now = max([now, *(at for _, _, at in ops)])
        for key in ("k1", "k2", "k3"):
            current = [(kind, at) for kind, k, at in ops if k == key and at + LIFETIME > clock.now]
            expected = any(kind == "s" or issued_at <= at for kind, at in current)
            assert await denied.denied(key, key, issued_at) == expected

    asyncio.run(run())


async def test_tokens_carry_their_session_and_a_millisecond_issue_time() -> None:
    tokens = AccessTokens(AUTH)
    second = int(time.time()) - 1
    principal = tokens.verify(tokens.issue("a1", session_id="fam1", kids=True, now=second + 0.1234).token)
    assert (principal.session_id, principal.kids) == ("fam1", True)
    assert principal.issued_at == pytest.approx(second + 0.123, abs=1e-6), "milliseconds, truncated"
    plain = tokens.verify(tokens.issue("a1").token)
    assert (plain.session_id, plain.kids) == (None, False)


async def test_another_process_follows_revocations_from_the_bus() -> None:
    bus = InMemoryBus()
    here, there = InMemoryDenyList(), InMemoryDenyList()
    following = asyncio.create_task(follow_revocations(bus, there, "process-b"))
    await asyncio.sleep(0)  # the follower's consumer group exists before anything is published
    revoker = AccessRevoker(here, bus, AUTH)
    tokens = AccessTokens(AUTH)
    old = tokens.verify(tokens.issue("acc1", session_id="fam1").token)
    other = tokens.verify(tokens.issue("acc2", session_id="fam2").token)
    await revoker.session("acc1", "fam1", accounts_pb2.REVOCATION_REASON_SIGNED_OUT)
    await revoker.account("acc2", accounts_pb2.REVOCATION_REASON_PASSWORD_CHANGED)
    try:

        async def followed() -> None:
            while len(there) < 2:  # noqa: ASYNC110 - the list has no event to wait on; this polls what it reports
                await asyncio.sleep(0.01)

        await asyncio.wait_for(followed(), timeout=30)  # the follower handled both events (30 s: a backstop)
        for denylist in (here, there):
            assert await denylist.denied(old.account_id, old.session_id, old.issued_at)
            assert await denylist.denied(other.account_id, other.session_id, other.issued_at)
            assert not await denylist.denied("acc3", "fam3", old.issued_at)
    finally:
        following.cancel()
        await bus.close()
