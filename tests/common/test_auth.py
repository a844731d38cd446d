"""Access token verification, including the cache of verified tokens: a cached token still expires."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from services.common.auth import AccessTokens
from services.common.config import AuthConfig
from services.common.errors import Unauthenticated

AUTH = AuthConfig(keys={"k1": SecretStr("auth-test-key-0123456789abcdef0123456")}, signing_kid="k1", leeway=0)


def test_verified_tokens_are_cached_but_still_expire() -> None:
    tokens = AccessTokens(AUTH)
    token = tokens.issue("acct-1", roles=["admin"], ttl=1).token
    first = tokens.verify(token)
    assert first.account_id == "acct-1" and first.is_admin
    assert tokens.verify(token) is first, "the second verification is answered from the cache"
    time.sleep(1.1)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)  # and once dropped from the cache, full verification says the same


def test_tampered_and_foreign_tokens_are_refused() -> None:
    tokens = AccessTokens(AUTH)
    token = tokens.issue("acct-1").token
    tokens.verify(token)
    head, body, sig = token.split(".")
    with pytest.raises(Unauthenticated):
        tokens.verify(f"{head}.{body}.{sig[:-2]}AA")
    other = AccessTokens(AuthConfig(keys={"k1": SecretStr("another-key-0123456789abcdef0123456789")}, signing_kid="k1"))
    with pytest.raises(Unauthenticated):
        other.verify(token)
