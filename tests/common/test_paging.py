"""Page sizes and page tokens: round trips, tampering, tokens from another query."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.common.paging import MAX_PAGE_SIZE, PageTokens, page_size, query_fingerprint

TOKENS = PageTokens(b"test-key")
FP = query_fingerprint({"parent": "accounts/a"})


def test_page_size_rules() -> None:
    assert page_size(0) == 50
    assert page_size(7) == 7
    assert page_size(10**9) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument, match="page_size must not be negative") as err:
        page_size(-1)
    assert err.value.violations[0].field == "page_size"


@given(st.binary(max_size=200))
def test_round_trip(state: bytes) -> None:
    assert TOKENS.decode(TOKENS.encode(state, FP), FP) == state


def test_empty_means_first_or_last_page() -> None:
    assert TOKENS.encode(None, FP) == ""
    assert TOKENS.decode("", FP) is None


@given(st.binary(min_size=1, max_size=50), st.integers(min_value=0), st.integers(min_value=0, max_value=63))
def test_any_change_is_refused(state: bytes, pos: int, delta: int) -> None:
    token = TOKENS.encode(state, FP)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    i = pos % len(token)
    replacement = alphabet[(alphabet.index(token[i]) + 1 + delta % 63) % 64]
    tampered = token[:i] + replacement + token[i + 1 :]
    try:
        decoded = TOKENS.decode(tampered, FP)
    except InvalidArgument:
        return
    # the last base64 character can carry padding bits that do not change the bytes
    assert decoded == state


@pytest.mark.parametrize("garbage", ["x", "!!!!", "a" * 5000, "bm90IGEgdG9rZW4", "====", "\u00e9\u00e9"])
def test_garbage_tokens(garbage: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        TOKENS.decode(garbage, FP)
    assert "page_token" in str(err.value)


def test_token_from_another_query_or_server() -> None:
    token = TOKENS.encode(b"state", FP)
    with pytest.raises(InvalidArgument, match="another query"):
        TOKENS.decode(token, query_fingerprint({"parent": "accounts/b"}))
    with pytest.raises(InvalidArgument, match="altered"):
        PageTokens(b"other-key").decode(token, FP)
