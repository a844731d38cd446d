"""Signed URL tokens for media: the keyring from the platform's ``url_signing`` keys, what a session's token
grants, and the one check every Python HTTP surface makes (the Rust edges make the same one in
native/core/src/edge/server.rs).

A playback session's token covers its manifests (``/sessions/{session}/*``), its steering manifests
(``/steering/*/{session}``) and its title's media (``/v/{media}/*``), is bound to the session id, expires with the
session's lease (renewed by its heartbeats), and carries the title's licensed regions when it has any (the edges
and the manifest endpoint then check the client's region too)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from marquee.native import InvalidArgumentError, TokenError, TokenExpiredError, TokenKeyring
from services.common.config import SigningKeysConfig

TOKEN_PARAM = "token"


def keyring(signing: SigningKeysConfig) -> TokenKeyring:
    keys: Mapping[str, SecretStr] = signing.keys
    return TokenKeyring({kid: s.get_secret_value().encode() for kid, s in keys.items()}, signing.signing_kid)


def session_acl(session_id: str, media_id: str) -> list[str]:
    """The paths a session's token grants."""
    return [f"/v/{media_id}/*", f"/sessions/{session_id}/*", f"/steering/*/{session_id}"]


def refusal(
    keys: TokenKeyring, token: str, path: str, session_id: str, region: str | None = None
) -> tuple[int, str] | None:
    """Why ``token`` may not read ``path`` of ``session_id`` as (HTTP status, message), or None when it may: 403
    for a missing, malformed, tampered or foreign token (another title, another session), or one bound to
    licensed regions the client's ``region`` (when given) is not in; 410 once expired."""
    if not token:
        return 403, "a signed token is required"
    try:
        claims = keys.verify(token, path, session_id=session_id)
    except TokenExpiredError:
        return 410, "the token has expired"
    except (TokenError, InvalidArgumentError) as exc:
        return 403, str(exc)
    if region is not None and claims.regions and region not in claims.regions:
        return 403, f"the title is not licensed in {region or 'an unknown region'}"
    return None
