"""The access-token deny list: what it denies, for how long, that it forgets expired entries, and that a process
fed from ``accounts.revoked`` denies what the accounts service denied (the multi-process path)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from marquee.v1 import accounts_pb2
from services.accounts.revocation import AccessRevoker
from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.config import AuthConfig
from services.common.denylist import DenyList, InMemoryDenyList, follow_revocations
from services.common.denylist_redis import RedisDenyList
from services.common.errors import Unavailable
from services.common.ports import free_port
from services.common.tasks import cancel_all
from services.platform.localredis import RedisServer

AUTH = AuthConfig(keys={"k1": SecretStr("d" * 40)}, signing_kid="k1", access_token_ttl=900, leeway=5)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Lists:
    """One adapter under test, with the time its entries expire by: a clock the in-memory list is handed and the
    test moves, or the Redis server's clock, which only passes (the test waits for Redis to report the time)."""

    def __init__(self, denylist: DenyList, clock: Clock | None, client: aioredis.Redis | None, prefix: str) -> None:
        self.denylist = denylist
        self._clock = clock
        self._redis = client
        self._prefix = prefix

    async def now(self) -> float:
        if self._clock is not None:
            return self._clock.now
        assert self._redis is not None
        seconds, micros = await self._redis.time()
        return seconds + micros / 1e6

    async def pass_to(self, moment: float) -> None:
        """Until the list's clock is past ``moment`` (and a key expiring at it is gone)."""
        if self._clock is not None:
            self._clock.now = max(self._clock.now, moment)
            return
        while await self.now() <= moment + 0.002:  # noqa: ASYNC110 - polls the time Redis reports
            await asyncio.sleep(0.02)

    async def entries(self) -> int:
        """Entries the list still holds (expired ones are forgotten)."""
        if isinstance(self.denylist, InMemoryDenyList):
            return len(self.denylist)
        assert self._redis is not None
        return len([key async for key in self._redis.scan_iter(match=f"{self._prefix}*")])


@pytest.fixture(params=["memory", "redis"])
async def lists(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Lists]:
    if request.param == "memory":
        clock = Clock(time.time())
        yield Lists(InMemoryDenyList(clock), clock, None, redis_prefix)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    try:
        yield Lists(RedisDenyList(client, prefix=redis_prefix), None, client, redis_prefix)
    finally:
        await client.aclose()


async def test_a_denied_session_is_denied_until_its_tokens_expire(lists: Lists) -> None:
    denied, now = lists.denylist, await lists.now()
    await denied.deny_session("s1", until=now + 1.5)
    assert await denied.denied("a1", "s1", now - 10)
    assert not await denied.denied("a1", "s2", now - 10), "another session of the same account"
    assert not await denied.denied("a1", None, now - 10)
    assert not await denied.denied("s1", None, now - 10), "a session id is not an account id"
    # an earlier expiry never shortens the entry
    await denied.deny_session("s1", until=now + 0.5)
    await lists.pass_to(now + 1.0)
    assert await denied.denied("a1", "s1", now - 10)
    await lists.pass_to(now + 1.5)
    assert not await denied.denied("a1", "s1", now - 10)
    await denied.deny_session("s3", until=now + 60)  # a write forgets what expired (Redis: the key expired)
    assert await lists.entries() == 1


async def test_an_account_is_denied_for_tokens_issued_up_to_the_revocation(lists: Lists) -> None:
    denied, revoked_at = lists.denylist, await lists.now()
    await denied.deny_account("a1", issued_up_to=revoked_at, until=revoked_at + 1.5)
    assert await denied.denied("a1", "any", revoked_at - 0.001)
    assert await denied.denied("a1", None, revoked_at)
    assert not await denied.denied("a1", "any", revoked_at + 0.001), "signed in again just after"
    assert not await denied.denied("a2", None, revoked_at - 1)
    # a later revocation moves the mark and the expiry forward, an earlier one never back
    await denied.deny_account("a1", issued_up_to=revoked_at + 10, until=revoked_at + 2.5)
    await denied.deny_account("a1", issued_up_to=revoked_at - 100, until=revoked_at + 0.5)
    assert await denied.denied("a1", None, revoked_at + 5)
    await lists.pass_to(revoked_at + 1.5)
    assert await denied.denied("a1", None, revoked_at + 5)
    await lists.pass_to(revoked_at + 2.5)
    assert not await denied.denied("a1", None, revoked_at + 5)
    await denied.deny_session("s", until=revoked_at + 60)
    assert await lists.entries() == 1


async def test_an_entry_already_expired_is_not_kept(lists: Lists) -> None:
    denied, now = lists.denylist, await lists.now()
    await denied.deny_session("s1", until=now - 1)
    await denied.deny_account("a1", issued_up_to=now - 5, until=now - 1)
    assert not await denied.denied("a1", "s1", now - 10)
    await denied.deny_session("s2", until=now + 60)
    assert await lists.entries() == 1


async def test_redis_keys_are_namespaced_and_expire_with_their_entry(
    redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    denied = RedisDenyList(redis_client, prefix=redis_prefix)
    seconds, _ = await redis_client.time()
    until = seconds + 900.25
    await denied.deny_session("fam1", until=until)
    await denied.deny_account("acc1", issued_up_to=seconds + 0.123, until=until)
    assert sorted([k.decode() async for k in redis_client.scan_iter(match=f"{redis_prefix}*")]) == [
        f"{redis_prefix}a:acc1",
        f"{redis_prefix}s:fam1",
    ]
    for key in ("a:acc1", "s:fam1"):
        assert await redis_client.pexpiretime(redis_prefix + key) == int(until * 1000)
    mark = await redis_client.get(f"{redis_prefix}a:acc1")
    assert mark is not None and float(mark) == seconds + 0.123


async def test_an_unreachable_redis_fails_closed() -> None:
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    denied = RedisDenyList(client)
    try:
        with pytest.raises(Unavailable) as err:
            await denied.denied("a1", "s1", time.time())
        assert err.value.reason == "DENYLIST_UNAVAILABLE"
        with pytest.raises(Unavailable):
            await denied.deny_session("s1", until=time.time() + 60)
    finally:
        await client.aclose()


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


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["s", "a"]), st.sampled_from(["k1", "k2", "k3"]), st.integers(0, 100)),
        max_size=20,
    ),
    now=st.integers(0, 140),
    issued_at=st.integers(0, 100),
)
def test_the_redis_list_answers_as_the_set_of_every_revocation_made(
    redis_server: RedisServer, ops: list[tuple[str, str, int]], now: int, issued_at: int
) -> None:
    """The same model on Redis, whose clock cannot be moved: model time is mapped onto the Redis server's so that
    the question is asked half a second after ``now``. Whole seconds keep every expiry at least half a second
    away from the question, on one side or the other (the test does not race the clock)."""

    async def run() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            denied = RedisDenyList(client, prefix=f"p{uuid.uuid4().hex[:12]}:")
            seconds, micros = await client.time()
            query = max([now, *(at for _, _, at in ops)])
            base = seconds + micros / 1e6 - query - 0.5  # model time t is Redis time base + t
            for kind, key, at in sorted(ops, key=lambda op: op[2]):
                if kind == "s":
                    await denied.deny_session(key, until=base + at + LIFETIME)
                else:
                    await denied.deny_account(key, issued_up_to=base + at, until=base + at + LIFETIME)
            for key in ("k1", "k2", "k3"):
                current = [(kind, at) for kind, k, at in ops if k == key and at + LIFETIME > query]
                expected = any(kind == "s" or issued_at <= at for kind, at in current)
                assert await denied.denied(key, key, base + issued_at) == expected
        finally:
            await client.aclose()

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
        await cancel_all([following])
        await bus.close()
