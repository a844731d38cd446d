"""Ending access tokens before they expire: what every session revocation does besides revoking refresh tokens.

A revocation is written to the deny list every service consults (services.common.denylist), kept until the last
token it concerns has expired (now + the access-token lifetime + the verification leeway), and published on
``accounts.revoked`` for processes that do not share the list. One session's tokens are denied by its id (the
tokens' ``sid`` claim); an account's by the time they were issued (``iat``)."""

from __future__ import annotations

import time
from typing import TypeAlias

from google.protobuf import timestamp_pb2

from marquee.v1 import accounts_pb2
from services.common.bus.port import EventBus
from services.common.config import AuthConfig
from services.common.denylist import DenyList
from services.common.topics import ACCOUNTS_REVOKED

Reason: TypeAlias = accounts_pb2.RevocationReason.ValueType


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


class AccessRevoker:
    def __init__(self, denylist: DenyList, bus: EventBus, auth: AuthConfig) -> None:
        self._denylist = denylist
        self._bus = bus
        self._lifetime = auth.access_token_ttl + auth.leeway

    async def session(self, account_id: str, session_id: str, reason: Reason) -> None:
        """Every access token of the session (refresh-token family) ``session_id`` is refused from now on."""
        now = time.time()
        until = now + self._lifetime
        await self._denylist.deny_session(session_id, until=until)
        await self._publish(account_id, session_id, now, until, reason)

    async def account(self, account_id: str, reason: Reason) -> None:
        """Every access token of the account issued until now is refused from now on."""
        now = time.time()
        until = now + self._lifetime
        await self._denylist.deny_account(account_id, issued_up_to=now, until=until)
        await self._publish(account_id, "", now, until, reason)

    async def _publish(self, account_id: str, session_id: str, now: float, until: float, reason: Reason) -> None:
        event = accounts_pb2.AccessRevokedEvent(
            account=f"accounts/{account_id}",
            session=session_id,
            revoke_time=_ts(now),
            expire_time=_ts(until),
            reason=reason,
        )
        await self._bus.publish(ACCOUNTS_REVOKED, event.SerializeToString(), key=account_id)
