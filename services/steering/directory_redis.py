"""The session directory on Redis (``[state] kind = "redis"``): a session started through one steering replica is
steered by any other, and a session that ended is refused (410) by every one.

Keys (under ``<prefix>``, ``marquee:steering:`` with the default ``[redis]`` prefix):

- ``<prefix>session:<session id>``: a hash, ``facts`` (JSON: the session's durable facts, see directory.py) and
  ``seen`` (unix ms on the Redis server's clock, one clock for every replica), rewritten when the session starts
  and then at most every ``refresh_interval`` while some replica steers it. A session whose ``seen`` is older than
  ``idle_timeout`` (plus one ``refresh_interval``, the refreshes' slack) has gone idle everywhere: it has ended.
  The key expires ``ended_memory`` after that, so an idle session answers 410 as long as an ended one does.
- ``<prefix>ended:<session id>``: set when playback ends the session, for ``ended_memory``; a write refuses a
  session marked so (a replica that had not heard of the end yet does not bring it back).

Reads are hostile-input safe: session ids are checked before a key is built (steerer.check_session_id, by the
caller), and a record that is too large or does not parse into valid facts is an unknown session, never an error.
When Redis is unreachable a lookup or write raises UNAVAILABLE (STEERING_STATE_UNAVAILABLE)."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
from typing import Any

import redis.asyncio as aioredis

from services.common.names import ID_PATTERN
from services.common.redisclient import UNREACHABLE
from services.steering.directory import Ended, Lookup, SessionFacts
from services.steering.staterr import redis_ms, unavailable
from services.steering.steerer import COUNTRY

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 64 * 1024
MAX_PATHWAYS = 256
MAX_PATHWAY_ID = 64
MAX_URI = 2048
MAX_ZONE = 128
NAME = re.compile(f"^{ID_PATTERN}$")

# KEYS[1]: the session's hash, KEYS[2]: its ended mark; ARGV[1]: the facts (JSON), ARGV[2]: the hash's ttl (ms).
# 0 (and nothing written) when the session has ended.
_WRITE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'facts', ARGV[1], 'seen', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def _text(value: Any, limit: int, *, empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > limit or (not empty and not value):
        raise ValueError("not a bounded string")
    return value


def encode(facts: SessionFacts) -> str:
    """The record's ``facts``; without the known pathways when they would make it too large (the adopting replica
    then takes them from its first answer, as a new session does)."""
    doc = {
        "session": facts.session_id,
        "title": facts.title_id,
        "client": facts.client,
        "country": facts.country,
        "zone": facts.zone,
        "account": facts.account,
        "pathways": facts.known_pathways,
    }
    body = json.dumps(doc, separators=(",", ":"))
    if len(body) > MAX_RECORD_BYTES or len(facts.known_pathways) > MAX_PATHWAYS:
        body = json.dumps(doc | {"pathways": {}}, separators=(",", ":"))
    return body


def decode(session_id: str, raw: bytes) -> SessionFacts:
    """Raises ValueError unless ``raw`` is a well-formed record of this session."""
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError("record too large")
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("session") != session_id:
        raise ValueError("not this session's record")
    title = _text(doc.get("title"), 64, empty=False)
    account = _text(doc.get("account"), 64)
    country = _text(doc.get("country"), 2)
    if not NAME.match(title) or (account and not NAME.match(account)) or (country and not COUNTRY.match(country)):
        raise ValueError("bad title, account or country")
    client = str(ipaddress.ip_address(_text(doc.get("client"), 64, empty=False)))
    pathways = doc.get("pathways")
    if not isinstance(pathways, dict) or len(pathways) > MAX_PATHWAYS:
        raise ValueError("bad pathways")
    known = {_text(k, MAX_PATHWAY_ID, empty=False): _text(v, MAX_URI, empty=False) for k, v in pathways.items()}
    return SessionFacts(session_id, title, client, country, _text(doc.get("zone"), MAX_ZONE), account, known)


class RedisDirectory:
    """The ``SessionDirectory`` port on Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "marquee:steering:",
        idle_timeout: float,
        refresh_interval: float,
        ended_memory: float,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._idle_ms = math.ceil((idle_timeout + refresh_interval) * 1000)
        self._ended_ms = max(1, math.ceil(ended_memory * 1000))
        self._write = client.register_script(_WRITE)

    def _keys(self, session_id: str) -> tuple[str, str]:
        return f"{self._prefix}session:{session_id}", f"{self._prefix}ended:{session_id}"

    async def write(self, facts: SessionFacts) -> bool:
        try:
            written = await self._write(
                keys=list(self._keys(facts.session_id)), args=[encode(facts), self._idle_ms + self._ended_ms]
            )
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc
        return int(written) == 1

    async def end(self, session_id: str) -> None:
        record, ended = self._keys(session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(ended, b"1", px=self._ended_ms)
                pipe.delete(record)
                await pipe.execute()
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc

    async def lookup(self, session_id: str) -> Lookup:
        record, ended = self._keys(session_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.time()
                pipe.exists(ended)
                pipe.hmget(record, ["facts", "seen"])
                time_reply, is_ended, (raw, seen) = await pipe.execute()
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc
        if is_ended:
            return Ended.ENDED
        if raw is None:
            return None
        try:
            if redis_ms(time_reply) - int(seen) > self._idle_ms:
                return Ended.ENDED  # idle on every replica: ended, as it would be on one
            return decode(session_id, raw)
        except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
            log.warning("steering: session %s has a corrupt directory record, taken as unknown: %s", session_id, exc)
            return None
