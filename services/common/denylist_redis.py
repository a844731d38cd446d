"""The access-token deny list on Redis (``[state] kind = "redis"``): one list every replica of every service shares,
so a revocation made by any accounts replica is seen by every other process at its very next call.

Two kinds of keys, each expiring at its entry's ``until`` (PXAT, on the Redis server's clock):

- ``<prefix>s:<session id>``: the session's tokens are denied while the key exists;
- ``<prefix>a:<account id>``: the account's tokens issued at or before the value (unix seconds) are denied.

Writes are one Lua script each, so concurrent revocations merge atomically as the in-memory list merges them: the
expiry only moves forward, and an account's mark is the latest of the marks written. ``denied`` is one MGET of the
two keys a token can hit (one round trip per authenticated call). When Redis cannot be reached, every call fails
closed with UNAVAILABLE (reason DENYLIST_UNAVAILABLE): a revoked token is never let through for want of the list.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from services.common.errors import Unavailable
from services.common.redisclient import UNREACHABLE

RETRY_AFTER = 1.0  # seconds a caller is told to wait when the list cannot be reached

# KEYS[1]: the session key; ARGV[1]: until (unix ms). The expiry never moves back.
_DENY_SESSION = """
local expiry = tonumber(ARGV[1])
local kept = redis.call('PEXPIRETIME', KEYS[1])
if kept > expiry then expiry = kept end
redis.call('SET', KEYS[1], '1', 'PXAT', expiry)
return 1
"""

# KEYS[1]: the account key; ARGV[1]: issued_up_to (unix seconds, as a decimal string), ARGV[2]: until (unix ms).
# The mark and the expiry both only move forward; the mark is kept as written (no float formatting in Lua).
_DENY_ACCOUNT = """
local mark = ARGV[1]
local expiry = tonumber(ARGV[2])
local before = redis.call('GET', KEYS[1])
if before and tonumber(before) > tonumber(mark) then mark = before end
local kept = redis.call('PEXPIRETIME', KEYS[1])
if kept > expiry then expiry = kept end
redis.call('SET', KEYS[1], mark, 'PXAT', expiry)
return 1
"""


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable(
        f"the access-token deny list (redis) is unreachable: {exc}",
        reason="DENYLIST_UNAVAILABLE",
        retry_after=RETRY_AFTER,
    )


class RedisDenyList:
    """The DenyList port on Redis: keys under ``prefix`` (``marquee:deny:`` with the default ``[redis]`` prefix)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "marquee:deny:") -> None:
        self._redis = client
        self._prefix = prefix
        self._deny_session = client.register_script(_DENY_SESSION)
        self._deny_account = client.register_script(_DENY_ACCOUNT)

    @property
    def prefix(self) -> str:
        return self._prefix

    def _session_key(self, session_id: str) -> str:
        return f"{self._prefix}s:{session_id}"

    def _account_key(self, account_id: str) -> str:
        return f"{self._prefix}a:{account_id}"

    async def deny_session(self, session_id: str, *, until: float) -> None:
        try:
            await self._deny_session(keys=[self._session_key(session_id)], args=[math.ceil(until * 1000)])
        except UNREACHABLE as exc:
            raise _unavailable(exc) from exc

    async def deny_account(self, account_id: str, *, issued_up_to: float, until: float) -> None:
        try:
            await self._deny_account(
                keys=[self._account_key(account_id)], args=[repr(issued_up_to), math.ceil(until * 1000)]
            )
        except UNREACHABLE as exc:
            raise _unavailable(exc) from exc

    async def denied(self, account_id: str, session_id: str | None, issued_at: float) -> bool:
        # a token without a session still reads two keys (one fixed shape); "" names no session key
        session_key = self._session_key(session_id) if session_id is not None else self._prefix + "s:"
        try:
            session, mark = await self._redis.mget([session_key, self._account_key(account_id)])
        except UNREACHABLE as exc:
            raise _unavailable(exc) from exc
        if session_id is not None and session is not None:
            return True
        return mark is not None and issued_at <= float(mark)
