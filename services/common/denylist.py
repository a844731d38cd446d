"""The access-token deny list, as a port: the in-memory adapter here, the Redis one (every replica shares it) in
services.common.denylist_redis; ``[state] kind`` picks one.

Access tokens are stateless JWTs, valid until they expire (``auth.access_token_ttl``, 15 minutes by default).
When sessions end before that, the accounts service denies their tokens here, and the auth interceptor of every
service consults the list on every RPC (services.common.interceptors.PlatformInterceptor):

- a session, by the token's ``sid`` claim (the refresh-token family it was issued from): SignOut and refresh-token
  reuse detection end one session;
- an account, for every token issued at or before a time (the token's ``iat``): RevokeAllSessions,
  ChangePassword and DeleteAccount end them all with one entry, however many sessions there were.

An entry is kept until every token it denies has expired (``until``, unix seconds), then forgotten, so the list
holds at most one access-token lifetime of revocations. In the all-in-one every service shares one list (the
runtime's Dependencies); with ``[state] kind = "redis"`` every replica of every service shares one list in Redis.
Revocations are also published on ``accounts.revoked`` (AccessRevokedEvent), and :func:`follow_revocations` feeds a
process's own list from that topic where the list is not shared (in-memory lists on a Redis bus).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Protocol

from marquee.v1 import accounts_pb2
from services.common.bus.consume import follow_topic
from services.common.bus.port import EventBus
from services.common.names import NamePattern
from services.common.topics import ACCOUNTS_REVOKED

ACCOUNT = NamePattern("accounts/{account}")


class DenyList(Protocol):
    async def deny_session(self, session_id: str, *, until: float) -> None:
        """Deny every access token of session ``session_id`` until ``until`` (unix seconds)."""
        ...

    async def deny_account(self, account_id: str, *, issued_up_to: float, until: float) -> None:
        """Deny every access token of ``account_id`` issued at or before ``issued_up_to``, until ``until``."""
        ...

    async def denied(self, account_id: str, session_id: str | None, issued_at: float) -> bool:
        """Whether a token of this account and session, issued at ``issued_at``, has been revoked."""
        ...


class InMemoryDenyList:
    """Process-local deny list: two dictionaries and a heap of expiries, trimmed as entries expire."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._sessions: dict[str, float] = {}  # session id -> until
        self._accounts: dict[str, tuple[float, float]] = {}  # account id -> (issued_up_to, until)
        self._expiries: list[tuple[float, str, str]] = []  # (until, "s" or "a", id)
        self._clock = clock

    def __len__(self) -> int:
        return len(self._sessions) + len(self._accounts)

    async def deny_session(self, session_id: str, *, until: float) -> None:
        self._forget_expired()
        until = max(until, self._sessions.get(session_id, 0.0))
        self._sessions[session_id] = until
        heapq.heappush(self._expiries, (until, "s", session_id))

    async def deny_account(self, account_id: str, *, issued_up_to: float, until: float) -> None:
        self._forget_expired()
        before, kept = self._accounts.get(account_id, (0.0, 0.0))
        entry = (max(issued_up_to, before), max(until, kept))
        self._accounts[account_id] = entry
        heapq.heappush(self._expiries, (entry[1], "a", account_id))

    async def denied(self, account_id: str, session_id: str | None, issued_at: float) -> bool:
        now = self._clock()
        if session_id is not None and self._sessions.get(session_id, 0.0) > now:
            return True
        entry = self._accounts.get(account_id)
        return entry is not None and entry[1] > now and issued_at <= entry[0]

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            until, kind, key = heapq.heappop(self._expiries)
            if kind == "s":
                if self._sessions.get(key) == until:
                    del self._sessions[key]
            elif self._accounts.get(key, (0.0, 0.0))[1] == until:
                del self._accounts[key]


async def apply_revocation(denylist: DenyList, event: accounts_pb2.AccessRevokedEvent) -> None:
    """Enter one ``accounts.revoked`` event into ``denylist``."""
    until = event.expire_time.ToNanoseconds() / 1e9
    account_id = ACCOUNT.parse(event.account, "account")["account"]
    if event.session:
        await denylist.deny_session(event.session, until=until)
    else:
        await denylist.deny_account(account_id, issued_up_to=event.revoke_time.ToNanoseconds() / 1e9, until=until)


async def follow_revocations(bus: EventBus, denylist: DenyList, group: str, *, from_beginning: bool = False) -> None:
    """Feed ``denylist`` from ``accounts.revoked`` until cancelled (a process whose list is not the accounts
    service's own; ``group`` is the process's own consumer group, so every process sees every revocation).
    ``from_beginning``: replay the retained topic first, so a process that starts late knows what was revoked
    before (entries already expired are forgotten at once)."""

    async def handle(event: accounts_pb2.AccessRevokedEvent) -> None:
        await apply_revocation(denylist, event)

    await follow_topic(
        bus,
        ACCOUNTS_REVOKED,
        group,
        "denylist",
        accounts_pb2.AccessRevokedEvent,
        handle,
        from_beginning=from_beginning,
        per_process=True,
    )
