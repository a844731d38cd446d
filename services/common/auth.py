"""Access tokens (JWT, HS256 with key ids for rotation) and the authorization checks handlers make.

An access token is short-lived and names the account, and (after SelectProfile) the profile and device, in its
claims: ``sub`` (account id), ``sid`` (the sign-in session: its refresh-token family), ``pid`` (profile id),
``pnm`` (the profile's display name, what reviews show as their author), ``kids`` (true for a kids profile),
``did`` (device id), ``roles``, ``plan``, ``mat`` (the profile's maturity limit, a MaturityRating value), ``jti``;
``iat`` has millisecond precision (RFC 7519 allows a fractional NumericDate), so an account-wide revocation at
time T refuses tokens issued before it and not those issued just after. Every service verifies it locally with
the shared keys and asks the deny list (services.common.denylist) whether it was revoked; refresh tokens are
opaque and live in the accounts service.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

from services.common.config import AuthConfig
from services.common.context import Principal, principal_var
from services.common.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from services.common.denylist import DenyList

_ALGORITHM = "HS256"
MAX_TOKEN_BYTES = 8192
# Tokens already verified, by their text: a client sends the same token on every call until it expires, and
# full verification (PyJWT parses and checks the text twice) costs far more than the RPC itself.
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int  # unix seconds


class AccessTokens:
    """Issues and verifies access JWTs with the configured keyring."""

    def __init__(self, config: AuthConfig) -> None:
        if not config.keys:
            raise ValueError("auth.keys is empty: configure a signing key (or use with_generated_key())")
        self._config = config
        self._keys = {kid: s.get_secret_value().encode() for kid, s in config.keys.items()}
        self._verified: OrderedDict[str, tuple[Principal, int]] = OrderedDict()

    @property
    def ttl(self) -> int:
        return self._config.access_token_ttl

    def issue(
        self,
        account_id: str,
        *,
        profile_id: str | None = None,
        device_id: str | None = None,
        session_id: str | None = None,
        profile_name: str | None = None,
        kids: bool = False,
        roles: Iterable[str] = (),
        plan: str = "",
        max_maturity: int | None = None,
        now: float | None = None,
        ttl: int | None = None,
    ) -> IssuedToken:
        # truncated, never rounded up: a token must not look issued after a revocation it came before
        issued = math.floor((now if now is not None else time.time()) * 1000) / 1000
        exp = int(issued) + (ttl if ttl is not None else self._config.access_token_ttl)
        claims: dict[str, object] = {
            "iss": self._config.issuer,
            "aud": self._config.audience,
            "sub": account_id,
            "iat": issued,
            "exp": exp,
            "jti": uuid.uuid4().hex,
        }
        if session_id:
            claims["sid"] = session_id
        if profile_id:
            claims["pid"] = profile_id
        if profile_name:
            claims["pnm"] = profile_name
        if kids:
            claims["kids"] = True
        if device_id:
            claims["did"] = device_id
        role_list = sorted(set(roles))
        if role_list:
            claims["roles"] = role_list
        if plan:
            claims["plan"] = plan
        if max_maturity is not None:
            claims["mat"] = max_maturity
        kid = self._config.signing_kid
        token = jwt.encode(claims, self._keys[kid], algorithm=_ALGORITHM, headers={"kid": kid})
        return IssuedToken(token, exp)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; UNAUTHENTICATED with the reason otherwise."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, exp = cached
            if time.time() < exp + self._config.leeway:
                return principal
            self._verified.pop(token, None)
            raise Unauthenticated("access token has expired", reason="TOKEN_EXPIRED")
        principal, exp = self._verify(token)
        self._verified[token] = (principal, exp)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    def valid_until(self, token: str) -> float | None:
        """Until when (unix seconds, with the leeway) a token this process verified stays valid; None when it has
        not verified it (or forgot it)."""
        cached = self._verified.get(token)
        return None if cached is None else cached[1] + self._config.leeway

    def _verify(self, token: str) -> tuple[Principal, int]:
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated("access token is missing or too long", reason="INVALID_TOKEN")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("access token is malformed", reason="INVALID_TOKEN") from exc
        kid = header.get("kid")
        if header.get("alg") != _ALGORITHM:
            raise Unauthenticated("access token uses an unsupported algorithm", reason="INVALID_TOKEN")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthenticated("access token was signed with an unknown key", reason="INVALID_TOKEN")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("access token has expired", reason="TOKEN_EXPIRED") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"access token is invalid: {exc}", reason="INVALID_TOKEN") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("access token has no subject", reason="INVALID_TOKEN")
        roles = claims.get("roles", [])
        principal = Principal(
            account_id=sub,
            profile_id=_opt_str(claims.get("pid")),
            device_id=_opt_str(claims.get("did")),
            roles=frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset(),
            token_id=str(claims.get("jti", "")),
            plan=str(claims.get("plan", "")),
            max_maturity=mat if isinstance(mat := claims.get("mat"), int) else None,
            session_id=_opt_str(claims.get("sid")),
            profile_name=_opt_str(claims.get("pnm")),
            issued_at=float(claims["iat"]),
            kids=claims.get("kids") is True,
        )
        return principal, int(claims["exp"])


SERVICE_ROLE = "service"  # only service-to-service credentials carry it (never a person's token)


def bearer_token(authorization: str) -> str:
    """The token of an ``authorization: Bearer <token>`` header (gRPC metadata or HTTP); UNAUTHENTICATED with
    reason INVALID_TOKEN when it is missing or not a bearer token."""
    if not authorization:
        raise Unauthenticated("missing access token: send 'authorization: Bearer <token>'", reason="INVALID_TOKEN")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <token>'", reason="INVALID_TOKEN")
    return token.strip()


async def authenticate(token: str, tokens: AccessTokens, denylist: DenyList) -> Principal:
    """The verified principal of an access token that has not been revoked: UNAUTHENTICATED (TOKEN_EXPIRED,
    INVALID_TOKEN, TOKEN_REVOKED, ...) otherwise. Every surface that takes access tokens checks them here."""
    principal = tokens.verify(token)
    if await denylist.denied(principal.account_id, principal.session_id, principal.issued_at):
        raise Unauthenticated(
            "access token has been revoked (signed out, or the account's sessions were ended): sign in again",
            reason="TOKEN_REVOKED",
        )
    return principal


class ServiceToken:
    """Call metadata with a short-lived admin token for one service's calls to others (steering, catalog),
    minted again once half its lifetime has passed. It also carries the ``service`` role, which internal RPCs
    (the content keys) require: an operator's admin token does not have it."""

    def __init__(self, tokens: AccessTokens, subject: str, ttl: int = 600) -> None:
        self._tokens, self._subject, self._ttl = tokens, subject, ttl
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._renew_at = 0.0

    def __call__(self) -> tuple[tuple[str, str], ...]:
        if time.time() >= self._renew_at:
            token = self._tokens.issue(self._subject, roles=["admin", SERVICE_ROLE], ttl=self._ttl).token
            self._metadata = (("authorization", f"Bearer {token}"),)
            self._renew_at = time.time() + self._ttl / 2
        return self._metadata


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def current_principal() -> Principal:
    """The verified caller of the current RPC (UNAUTHENTICATED when the RPC is public and had none)."""
    principal = principal_var.get()
    if principal is None:
        raise Unauthenticated("this call needs an access token", reason="INVALID_TOKEN")
    return principal


def require_account(account_id: str) -> Principal:
    """The caller must be ``account_id`` (or an admin); PERMISSION_DENIED otherwise."""
    principal = current_principal()
    if principal.account_id != account_id and not principal.is_admin:
        raise PermissionDenied("the caller may not access another account's resources")
    return principal


def require_profile(account_id: str, profile_id: str) -> Principal:
    """The caller must hold a token for this profile of this account (or be an admin)."""
    principal = require_account(account_id)
    if principal.is_admin:
        return principal
    if principal.profile_id != profile_id:
        raise PermissionDenied("the caller's token is for another profile; select this profile first")
    return principal


def require_admin() -> Principal:
    principal = current_principal()
    if not principal.is_admin:
        raise PermissionDenied("this call needs the admin role")
    return principal


def require_service() -> Principal:
    """The caller must be another service (a :class:`ServiceToken`: the admin and ``service`` roles)."""
    principal = require_admin()
    if SERVICE_ROLE not in principal.roles:
        raise PermissionDenied("this call is internal: only a service-to-service credential may make it")
    return principal
