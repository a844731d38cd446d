"""AIP-158 paging: page sizes with explicit limits and opaque, tamper-proof page tokens.

A page token carries the store's paging state plus a fingerprint of the query it belongs to, sealed with an
HMAC, so a garbage token, an edited token, or a token from another query is refused with INVALID_ARGUMENT
instead of silently returning the wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping

from services.common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_PAGE_TOKEN_CHARS = 2048
_MAC_BYTES = 16


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """0 means the default; sizes above the maximum are clamped (AIP-158); negative is an error."""
    if requested < 0:
        raise InvalidArgument(f"page_size must not be negative (got {requested})", field_name="page_size")
    if requested == 0:
        return default
    return min(requested, maximum)


def query_fingerprint(params: Mapping[str, object]) -> str:
    """A stable digest of the request fields (other than page_size/page_token) that define a query."""
    raw = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


class PageTokens:
    """Encodes and decodes page tokens with a server-side key."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"marquee-page-token:" + key).digest()

    def encode(self, state: bytes | None, fingerprint: str) -> str:
        """The next_page_token for ``state`` (empty string when there is no next page)."""
        if state is None:
            return ""
        body = json.dumps({"q": fingerprint, "s": base64.b64encode(state).decode()}, separators=(",", ":"))
        payload = body.encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def decode(self, token: str, fingerprint: str) -> bytes | None:
        """The paging state of ``token`` (None for the first page); INVALID_ARGUMENT when it is not ours."""
        if not token:
            return None
        if len(token) > MAX_PAGE_TOKEN_CHARS:
            raise InvalidArgument("page_token is too long to be one of ours", field_name="page_token")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise InvalidArgument("page_token is malformed", field_name="page_token") from exc
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise InvalidArgument("page_token is malformed or was altered", field_name="page_token")
        try:
            body = json.loads(payload)
            state = base64.b64decode(body["s"])
            query = body["q"]
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise InvalidArgument("page_token is malformed", field_name="page_token") from exc
        if query != fingerprint:
            raise InvalidArgument(
                "page_token belongs to another query: keep the other request fields unchanged while paging",
                field_name="page_token",
            )
        return state
