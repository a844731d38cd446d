"""Impressions and clicks of recommendation rows, for the dashboards' CTR per row.

Every row served (ListRecommendationRows, and a page of GetRecommendations) carries an ``event_token``: opaque,
signed by the service (HMAC-SHA256 under a key derived from the platform's access-token keys, so every replica
verifies what another issued and keys rotate with ``[auth] keys``), naming the account and profile it was served
to, the row kind, how many tiles it held, a random serve id and an expiry (``event_token_ttl``, an hour by
default). ReportRecommendationEvents takes events that name their row by that token:

- a token that is malformed, altered or signed with an unknown key is INVALID_ARGUMENT ``EVENT_TOKEN_INVALID``;
  an expired one INVALID_ARGUMENT ``EVENT_TOKEN_EXPIRED``; one issued to another profile (or account)
  PERMISSION_DENIED ``EVENT_TOKEN_NOT_YOURS``; a click position outside the row as served INVALID_ARGUMENT. A call
  holds at most ``MAX_EVENTS`` events and is checked whole before any is counted.
- each served row counts one impression, and one click per tile, however often (and on whichever replica) it is
  reported: the event is written to ``row_events((serve_id), event)`` with ``insert ... if not exists`` (a
  lightweight transaction in CQL) living as long as the token, and counted only by the write that created it.
- the ``row`` label is the row kind in the token, from the known set :data:`ROW_LABELS` (anything else would be
  ``other``); no account, profile or title ids are labels.

So a client can neither report rows it was never served, nor inflate a row it was served (a page reload serves new
rows with new tokens: each is a real impression)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter

from marquee.v1 import recommendations_pb2 as pb
from services.common.errors import InvalidArgument

ROW_LABELS: dict[int, str] = {
    pb.RECOMMENDATION_ROW_TOP_PICKS: "top_picks",
    pb.RECOMMENDATION_ROW_BECAUSE_YOU_WATCHED: "because_you_watched",
    pb.RECOMMENDATION_ROW_TRENDING: "trending",
    pb.RECOMMENDATION_ROW_SIMILAR_TITLES: "similar_titles",
}
OTHER = "other"
MAX_EVENTS = 100  # per ReportRecommendationEvents call
MAX_TOKEN_CHARS = 1024
_MAC_BYTES = 16
_CONTEXT = b"marquee-recommendation-events:"

IMPRESSIONS = Counter(
    "marquee_recommendations_impressions_total", "Recommendation rows shown, once per row served.", ["row"]
)
CLICKS = Counter(
    "marquee_recommendations_clicks_total", "Recommendation tiles chosen, once per tile of a row served.", ["row"]
)
for _label in (*ROW_LABELS.values(), OTHER):  # every series exists (at zero) from the start, for CTR rates
    IMPRESSIONS.labels(row=_label)
    CLICKS.labels(row=_label)


def row_label(row: int) -> str:
    return ROW_LABELS.get(row, OTHER)


@dataclass(frozen=True)
class Served:
    """What an event token says was served."""

    account_id: str
    profile_id: str
    row: int
    items: int
    serve_id: str
    expire_time: int  # unix seconds


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class EventTokens:
    """Issues and verifies event tokens. ``keys`` maps key id -> secret; tokens are signed with ``signing_kid``
    and verified with the key they name (any of ``keys``)."""

    def __init__(
        self, keys: Mapping[str, bytes], signing_kid: str, ttl: int, clock: Callable[[], float] = time.time
    ) -> None:
        if signing_kid not in keys:
            raise ValueError(f"signing key {signing_kid!r} is not one of the keys")
        self._keys = {kid: hashlib.sha256(_CONTEXT + secret).digest() for kid, secret in keys.items()}
        self._kid = signing_kid
        self._ttl = ttl
        self._clock = clock

    def issue(self, account_id: str, profile_id: str, row: int, items: int) -> str:
        claims = {
            "k": self._kid,
            "a": account_id,
            "p": profile_id,
            "r": row,
            "n": items,
            "i": _b64(os.urandom(12)),
            "e": int(self._clock()) + self._ttl,
        }
        payload = json.dumps(claims, separators=(",", ":")).encode()
        mac = hmac.new(self._keys[self._kid], payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return f"{_b64(payload)}.{_b64(mac)}"

    def verify(self, token: str, field: str) -> Served:
        """What ``token`` says was served; INVALID_ARGUMENT (EVENT_TOKEN_INVALID or EVENT_TOKEN_EXPIRED) unless it
        is one of ours, unaltered and unexpired."""

        def invalid(why: str) -> InvalidArgument:
            return InvalidArgument(f"{field} {why}", field_name=field, reason="EVENT_TOKEN_INVALID")

        if not token:
            raise invalid("is required")
        if len(token) > MAX_TOKEN_CHARS:
            raise invalid("is too long to be one of ours")
        body, _, signature = token.partition(".")
        try:
            payload, mac = _unb64(body), _unb64(signature)
            claims = json.loads(payload)
            key = self._keys.get(claims["k"]) if isinstance(claims, dict) else None
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise invalid("is malformed") from None
        if key is None:
            raise invalid("is signed with an unknown key")
        if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]):
            raise invalid("was altered or is not one of ours")
        try:
            served = Served(
                str(claims["a"]), str(claims["p"]), int(claims["r"]), int(claims["n"]), str(claims["i"]),
                int(claims["e"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            raise invalid("is malformed") from None
        if served.expire_time <= self._clock():
            raise InvalidArgument(
                f"{field} has expired: report events of rows served in the last {self._ttl} s",
                field_name=field,
                reason="EVENT_TOKEN_EXPIRED",
            )
        return served

    def remaining(self, served: Served) -> int:
        """Seconds the token is still valid (at least 1)."""
        return max(1, served.expire_time - int(self._clock()))
