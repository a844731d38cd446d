"""Rotating refresh tokens with reuse detection (OAuth 2.0 Security BCP, section 4.14).

A refresh token is 256 random bits shown to the client once; only its SHA-256 is stored. Every token belongs to
a family (one sign-in). Using a token marks it used (a lightweight transaction, so two concurrent uses cannot
both win) and issues its successor in the same family. Presenting an already-used token means a copy is in the
wrong hands: the whole family is revoked and both holders must sign in again.

Revoking a family (or all of an account's) also ends the access tokens issued from it, through the
:class:`~services.accounts.revocation.AccessRevoker`: the family id is the access tokens' session id (``sid``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass

from marquee.v1 import accounts_pb2
from services.accounts import schema
from services.accounts.revocation import AccessRevoker, Reason
from services.common.errors import Unauthenticated
from services.common.ids import new_id, now_micros
from services.common.store.port import Store

log = logging.getLogger("marquee.accounts")

MAX_REFRESH_TOKEN_CHARS = 128


@dataclass(frozen=True)
class RefreshGrant:
    """What a valid refresh token grants: a new access token for this account/profile/device."""

    account_id: str
    family_id: str
    profile_id: str
    device_id: str
    token: str
    expires_at: int  # unix seconds


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshTokens:
    def __init__(self, store: Store, ttl: int, revoker: AccessRevoker | None) -> None:
        """``revoker`` None: revocations reach refresh tokens only (tools that run outside the platform's process,
        whose access tokens then stay valid until they expire)."""
        self._store = store
        self._ttl = ttl
        self._revoker = revoker

    async def start_family(self, account_id: str, *, profile_id: str = "", device_id: str = "") -> RefreshGrant:
        """A new sign-in session and its first refresh token."""
        family_id = new_id()
        expires_at = int(time.time()) + self._ttl
        await self._store.insert(
            schema.TOKEN_FAMILIES,
            {
                "account_id": account_id,
                "family_id": family_id,
                "revoked": False,
                "create_time": now_micros(),
                "expires_at": expires_at,
            },
            ttl=self._ttl,
        )
        return await self._issue(account_id, family_id, profile_id, device_id, expires_at)

    async def _issue(
        self, account_id: str, family_id: str, profile_id: str, device_id: str, expires_at: int
    ) -> RefreshGrant:
        token = secrets.token_urlsafe(32)
        ttl = max(1, expires_at - int(time.time()))
        await self._store.insert(
            schema.REFRESH_TOKENS,
            {
                "token_hash": token_hash(token),
                "account_id": account_id,
                "family_id": family_id,
                "profile_id": profile_id,
                "device_id": device_id,
                "expires_at": expires_at,
                "used": False,
            },
            ttl=ttl,
        )
        return RefreshGrant(account_id, family_id, profile_id, device_id, token, expires_at)

    async def rotate(self, token: str, *, profile_id: str | None = None, device_id: str | None = None) -> RefreshGrant:
        """Spend ``token`` and return its successor (optionally re-bound to another profile/device).

        UNAUTHENTICATED when the token is unknown, expired, revoked, or reused (which revokes its family)."""
        if not token or len(token) > MAX_REFRESH_TOKEN_CHARS:
            raise Unauthenticated("refresh token is missing or malformed", reason="INVALID_TOKEN")
        key = {"token_hash": token_hash(token)}
        row = await self._store.get(schema.REFRESH_TOKENS, key)
        if row is None or int(row["expires_at"]) <= int(time.time()):
            raise Unauthenticated("refresh token is unknown or expired: sign in again", reason="INVALID_TOKEN")
        account_id, family_id = row["account_id"], row["family_id"]
        family = await self._store.get(schema.TOKEN_FAMILIES, {"account_id": account_id, "family_id": family_id})
        if family is None or family["revoked"]:
            raise Unauthenticated("this session was signed out: sign in again", reason="INVALID_TOKEN")
        if row["used"] or not await self._store.update(schema.REFRESH_TOKENS, key, {"used": True}, if_={"used": False}):
            await self.revoke_family(account_id, family_id, accounts_pb2.REVOCATION_REASON_REFRESH_TOKEN_REUSED)
            log.warning("refresh token reuse detected; session revoked", extra={"account": account_id})
            raise Unauthenticated(
                "refresh token was already used: the session has been revoked, sign in again",
                reason="REFRESH_TOKEN_REUSED",
            )
        return await self._issue(
            account_id,
            family_id,
            row["profile_id"] if profile_id is None else profile_id,
            row["device_id"] if device_id is None else device_id,
            int(family["expires_at"]),
        )

    async def family_of(self, token: str) -> tuple[str, str] | None:
        """(account id, family id) of a stored token, whatever its state."""
        if not token or len(token) > MAX_REFRESH_TOKEN_CHARS:
            return None
        row = await self._store.get(schema.REFRESH_TOKENS, {"token_hash": token_hash(token)})
        return None if row is None else (row["account_id"], row["family_id"])

    async def revoke_family(self, account_id: str, family_id: str, reason: Reason) -> None:
        """End one session: its refresh tokens and the access tokens issued from it."""
        await self._revoke_in_store(account_id, family_id)
        if self._revoker is not None:
            await self._revoker.session(account_id, family_id, reason)

    async def revoke_all(self, account_id: str, reason: Reason) -> int:
        """End every session of the account (and every access token issued so far); returns how many were
        active."""
        if self._revoker is not None:
            await self._revoker.account(account_id, reason)
        revoked = 0
        after = None
        while True:
            page = await self._store.query(schema.TOKEN_FAMILIES, {"account_id": account_id}, limit=200, after=after)
            for fam in page.rows:
                if not fam["revoked"]:
                    await self._revoke_in_store(account_id, fam["family_id"])
                    revoked += 1
            if page.next is None:
                return revoked
            after = page.next

    async def _revoke_in_store(self, account_id: str, family_id: str) -> None:
        await self._store.update(
            schema.TOKEN_FAMILIES, {"account_id": account_id, "family_id": family_id}, {"revoked": True}, if_exists=True
        )
