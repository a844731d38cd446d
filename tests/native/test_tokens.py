"""Signed URL tokens through the Python binding: the properties the edge and playback rely on."""

from __future__ import annotations

import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from marquee.native import (
    InvalidArgumentError,
    TokenError,
    TokenExpiredError,
    TokenForbiddenError,
    TokenInvalidError,
    TokenKeyring,
    UnknownKeyError,
    acl_matches,
)

KEYS = TokenKeyring({"k1": b"0123456789abcdef0123"}, "k1")
FUTURE = 4_000_000_000
SEGMENT = st.from_regex(r"[a-z0-9_-]{1,10}(\.[a-z0-9]{1,4})?", fullmatch=True)
PATHS = st.lists(SEGMENT, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs))


def test_sign_and_verify_a_title() -> None:
    token = KEYS.sign(["/v/bbb/*"], FUTURE, session_id="sess-1")
    claims = KEYS.verify(token, "/v/bbb/720p/seg-12.m4s", session_id="sess-1")
    assert (claims.kid, claims.expires_at, claims.acl, claims.session_id) == ("k1", FUTURE, ["/v/bbb/*"], "sess-1")
    assert KEYS.verify(token, "/v/bbb/master.m3u8").acl == ["/v/bbb/*"]
    assert "sess-1" in repr(claims)


def test_tokens_bound_to_licensed_regions() -> None:
    token = KEYS.sign(["/v/bbb/*"], FUTURE, session_id="s", regions=["JP", "KR"])
    assert token.startswith("v2.") and KEYS.sign(["/v/bbb/*"], FUTURE).startswith("v1.")
    assert KEYS.verify(token, "/v/bbb/seg-1.m4s", session_id="s").regions == ["JP", "KR"]
    assert KEYS.verify(KEYS.sign(["/v/bbb/*"], FUTURE), "/v/bbb/x").regions == []
    for bad in (["jp"], ["JPN"], [""], ["J1"], ["JP"] * 301):
        with pytest.raises(InvalidArgumentError):
            KEYS.sign(["/v/bbb/*"], FUTURE, regions=bad)


@settings(max_examples=300)
@given(st.data())
def test_any_single_character_change_is_invalid(data: st.DataObject) -> None:
    token = KEYS.sign(["/v/t/*"], FUTURE, session_id="s", regions=data.draw(st.sampled_from([None, ["JP"]])))
    i = data.draw(st.integers(0, len(token) - 1))
    ch = data.draw(st.characters(codec="ascii"))
    assume(ch != token[i])
    tampered = token[:i] + ch + token[i + 1 :]
    with pytest.raises((TokenInvalidError, UnknownKeyError)):
        KEYS.verify(tampered, "/v/t/seg-1.m4s", now=0, session_id="s")


@given(st.integers(min_value=2, max_value=2**62))
def test_expiry_boundary(exp: int) -> None:
    token = KEYS.sign(["/a/*"], exp)
    assert KEYS.verify(token, "/a/b", now=exp - 1).expires_at == exp
    with pytest.raises(TokenExpiredError):
        KEYS.verify(token, "/a/b", now=exp)


def test_default_now_is_the_clock() -> None:
    past = KEYS.sign(["/a/*"], int(time.time()) - 1)
    with pytest.raises(TokenExpiredError):
        KEYS.verify(past, "/a/b")


@given(PATHS, st.from_regex(r"[a-z0-9/._-]{0,30}", fullmatch=True), PATHS)
def test_wildcard_covers_exactly_the_subtree(prefix: str, rest: str, other: str) -> None:
    assert acl_matches(prefix + "/*", f"{prefix}/{rest}")
    assert acl_matches(prefix + "/*", other) == other.startswith(prefix + "/")


def test_wildcard_cases() -> None:
    assert acl_matches("/v/bbb/*", "/v/bbb/720p/seg-1.m4s")
    assert not acl_matches("/v/bbb/*", "/v/bbbx/720p/seg-1.m4s")
    assert acl_matches("/v/*/init.mp4", "/v/bbb/720p/init.mp4")
    assert not acl_matches("/v/*/init.mp4", "/v/bbb/720p/seg-1.m4s")


def test_key_rotation() -> None:
    old = TokenKeyring({"k1": b"0123456789abcdef0123"}, "k1")
    token = old.sign(["/v/*"], FUTURE)
    both = TokenKeyring({"k1": b"0123456789abcdef0123", "k2": b"fedcba9876543210fedc"}, "k2")
    assert both.verify(token, "/v/x").kid == "k1"
    assert both.sign(["/v/*"], FUTURE).startswith("v1.k2.")
    retired = TokenKeyring({"k2": b"fedcba9876543210fedc"}, "k2")
    with pytest.raises(UnknownKeyError):
        retired.verify(token, "/v/x")
    forged = TokenKeyring({"k1": b"not-the-same-secret-at-all"}, "k1")
    with pytest.raises(TokenInvalidError):
        forged.verify(token, "/v/x")


@pytest.mark.parametrize("path", ["/v/t/../u/a", "/v/t/./a", "/v/t//a", "v/t/a", "/v/t/a\\b", "/v/u/a"])
def test_forbidden_paths(path: str) -> None:
    token = KEYS.sign(["/v/t/*"], FUTURE)
    with pytest.raises(TokenForbiddenError):
        KEYS.verify(token, path)


def test_session_binding() -> None:
    token = KEYS.sign(["/v/*"], FUTURE, session_id="one")
    with pytest.raises(TokenForbiddenError, match="another session"):
        KEYS.verify(token, "/v/x", session_id="two")


@pytest.mark.parametrize("garbage", ["", "v1", "v1.k1.1.e.e.e", "x" * 5000, "v2.k1.1.L2Eq..sig", "\u00e9" * 10])
def test_garbage_tokens(garbage: str) -> None:
    with pytest.raises(TokenError):
        KEYS.verify(garbage, "/a")


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="shorter than 16 bytes"):
        TokenKeyring({"k1": b"short"}, "k1")
    with pytest.raises(InvalidArgumentError, match="not in the keyring"):
        TokenKeyring({"k1": b"0123456789abcdef0123"}, "k2")
    with pytest.raises(InvalidArgumentError):
        KEYS.sign([], FUTURE)
    with pytest.raises(InvalidArgumentError):
        KEYS.sign(["relative/path"], FUTURE)
    assert issubclass(InvalidArgumentError, ValueError)
    assert "0123456789" not in repr(KEYS)
