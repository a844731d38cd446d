"""Players' problem reports on Redis (``[state] kind = "redis"``): reports made to any steering replica count as
evidence on every one, with the rules of services/steering/evidence.py unchanged (the same window, caps and
minimum sessions and accounts, applied by each replica to the shared reports).

Keys (under ``<prefix>``, ``marquee:steering:`` with the default ``[redis]`` prefix):

- ``<prefix>problems:<zone>|<pathway>``: a sorted set of reports scored by their time (unix ms, the Redis server's
  clock), each member a JSON ``[id, session, account, count]``; trimmed to the window and to ``max_reports`` (the
  oldest go first) on every write, and expiring a window after the last one;
- ``<prefix>problems``: the index, ``<zone>|<pathway>`` scored by its latest report (pruned by the window).

A report is one Lua script; each replica reads every report in the window into its local ``PathwayEvidence`` every
``refresh_interval``, so evidence reported to another replica counts here at most about one interval later (the
replica a report was made to counts it at once).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable

import redis.asyncio as aioredis

from services.common.ids import new_id
from services.common.redisclient import UNREACHABLE
from services.steering.evidence import PathwayEvidence, Report
from services.steering.staterr import redis_ms, refresh_forever, unavailable

log = logging.getLogger(__name__)

# KEYS[1]: the reports, KEYS[2]: the index; ARGV[1]: window (ms), ARGV[2]: max reports, ARGV[3]: the member
# (JSON [id, session, account, count]), ARGV[4]: the index member. The report's time is the server's.
_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window - 1)
local n = redis.call('ZCARD', KEYS[1])
local keep = tonumber(ARGV[2])
if n > keep then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - keep - 1) end
redis.call('PEXPIRE', KEYS[1], window)
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window - 1)
return now
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisEvidence:
    """Writes reports to Redis and keeps ``evidence`` (the local snapshot) fresh."""

    def __init__(
        self,
        client: aioredis.Redis,
        evidence: PathwayEvidence,
        clock_now: Callable[[], float],
        *,
        prefix: str = "marquee:steering:",
        refresh_interval: float,
    ) -> None:
        self._redis = client
        self.evidence = evidence
        self._clock = clock_now
        self._prefix = prefix
        self._index = f"{prefix}problems"
        self._window_ms = max(1, math.ceil(evidence.rules.window * 1000))
        self.refresh_interval = refresh_interval
        self._add = client.register_script(_ADD)

    def _key(self, member: str) -> str:
        return f"{self._prefix}problems:{member}"

    async def add(self, zone: str, pathway: str, report: Report) -> None:
        """Shares a report the local evidence already holds (its time is taken from Redis's clock)."""
        member = f"{zone}|{pathway}"
        body = json.dumps([new_id(), report.session_id, report.account, report.count])
        try:
            await self._add(
                keys=[self._key(member), self._index],
                args=[self._window_ms, self.evidence.rules.max_reports, body, member],
            )
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc

    async def refresh(self) -> None:
        """Replaces the local snapshot with every report in the window."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(self._index, 0, -1)
            time_reply, members = await pipe.execute()
        now_ms = redis_ms(time_reply)
        names = [_text(m) for m in members]
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zrangebyscore(self._key(name), now_ms - self._window_ms, "+inf", withscores=True)
            replies = await pipe.execute()
        now = self._clock()
        snapshot: dict[tuple[str, str], list[Report]] = {}
        for name, entries in zip(names, replies, strict=True):
            zone, _, pathway = name.rpartition("|")
            reports = []
            for raw, score in entries:
                _, session, account, count = json.loads(_text(raw))
                reports.append(Report(now - max(0.0, now_ms - score) / 1000, session, account, int(count)))
            if reports:
                snapshot[(zone, pathway)] = reports
        self.evidence.replace(snapshot)

    async def run(self) -> None:
        """Refreshes the snapshot every ``refresh_interval`` until cancelled (staterr.refresh_forever)."""
        await refresh_forever(self.refresh, self.refresh_interval, "problem reports")
