"""Steering's edge registry on Redis (``[state] kind = "redis"``): every steering replica reads and writes the same
records, so an edge may register with one replica and heartbeat to another.

Keys (under ``<prefix>``, ``marquee:steering:`` with the default ``[redis]`` prefix):

- ``<prefix>edge:<edge id>``: a hash with the registration, the last heartbeat's load and health, and ``hb``, the
  time of the last registration or heartbeat in unix ms on the Redis server's clock (one clock for every replica).
  It expires ``record_ttl`` after the last heartbeat: an edge silent that long is forgotten, and its next
  heartbeat, to whichever replica, gets NOT_FOUND and registers again (as after a restart with in-memory state).
- ``<prefix>edges``: the index, a sorted set of edge ids scored by ``hb`` (members whose hash expired are pruned).

Registration, heartbeat and deregistration are one Lua script each (a heartbeat updates only a record that exists).
Steering decisions never read Redis: each replica keeps the local ``Registry`` as a snapshot, refreshed every
``refresh_interval`` (two round trips for all edges), so a replica's view of another replica's writes is at most
about one interval plus a round trip old. Heartbeat times are carried over as "this long ago" by Redis's clock, so
replicas' clocks need not agree. When Redis is unreachable writes fail with UNAVAILABLE
(STEERING_STATE_UNAVAILABLE) and the snapshot is kept: edges leave answers as their heartbeats age out.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import redis.asyncio as aioredis

from services.common.redisclient import UNREACHABLE
from services.steering.registry import EdgeRecord, Heartbeat, Registry, Role
from services.steering.staterr import redis_ms, refresh_forever, unavailable

log = logging.getLogger(__name__)

# KEYS[1]: the edge's hash, KEYS[2]: the index; ARGV[1]: edge id, ARGV[2]: ttl (ms), ARGV[3..]: field, value, ...
_REGISTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'hb', now, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return now
"""

# The same keys and arguments; -1 (and nothing written) when the edge is not registered.
_HEARTBEAT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'hb', now, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return now
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _beat_fields(beat: Heartbeat) -> dict[str, str]:
    fields = {
        "healthy": "1" if beat.healthy else "0",
        "conns": str(beat.active_connections),
        "egress": str(beat.egress_bps),
        "cache_used": str(beat.cache_used_bytes),
        "cache_cap": str(beat.cache_capacity_bytes),
        "titles": json.dumps(sorted(beat.cached_titles)),
    }
    if beat.capacity_bps > 0:
        fields["cap"] = str(beat.capacity_bps)
    return fields


def _record_fields(record: EdgeRecord) -> dict[str, str]:
    return {
        "pathway": record.pathway_id,
        "uri": record.base_uri,
        "zone": record.zone,
        "role": record.role.name,
        "countries": json.dumps(list(record.countries)),
    } | _beat_fields(
        Heartbeat(
            healthy=record.reported_healthy,
            active_connections=record.active_connections,
            egress_bps=record.egress_bps,
            capacity_bps=record.capacity_bps,
            cache_used_bytes=record.cache_used_bytes,
            cache_capacity_bytes=record.cache_capacity_bytes,
            cached_titles=record.cached_titles,
        )
    )


def _decode(edge_id: str, raw: dict[Any, Any], age: float, now: float) -> EdgeRecord:
    f = {_text(k): _text(v) for k, v in raw.items()}
    return EdgeRecord(
        edge_id=edge_id,
        pathway_id=f["pathway"],
        base_uri=f["uri"],
        zone=f["zone"],
        role=Role[f["role"]],
        capacity_bps=int(f["cap"]),
        countries=tuple(json.loads(f["countries"])),
        last_heartbeat=now - age,
        reported_healthy=f["healthy"] == "1",
        active_connections=int(f["conns"]),
        egress_bps=int(f["egress"]),
        cache_used_bytes=int(f["cache_used"]),
        cache_capacity_bytes=int(f["cache_cap"]),
        cached_titles=frozenset(json.loads(f["titles"])),
    )


class RedisEdges:
    """The ``Edges`` port on Redis, and the task that keeps ``registry`` (the local snapshot) fresh."""

    def __init__(
        self,
        client: aioredis.Redis,
        registry: Registry,
        *,
        prefix: str = "marquee:steering:",
        record_ttl: float,
        refresh_interval: float,
    ) -> None:
        self._redis = client
        self.registry = registry
        self._prefix = prefix
        self._index = f"{prefix}edges"
        self._ttl_ms = max(1, math.ceil(record_ttl * 1000))
        self.refresh_interval = refresh_interval
        self._register = client.register_script(_REGISTER)
        self._heartbeat = client.register_script(_HEARTBEAT)
        # registrations (record) and deregistrations (None) this replica made while a refresh was reading: laid
        # over that refresh's snapshot, which may have been read before them
        self._pending: dict[str, EdgeRecord | None] = {}

    def _key(self, edge_id: str) -> str:
        return f"{self._prefix}edge:{edge_id}"

    def _args(self, edge_id: str, fields: dict[str, str]) -> list[str | int]:
        return [edge_id, self._ttl_ms, *(x for pair in fields.items() for x in pair)]

    async def register(self, record: EdgeRecord) -> EdgeRecord:
        try:
            await self._register(
                keys=[self._key(record.edge_id), self._index], args=self._args(record.edge_id, _record_fields(record))
            )
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc
        self._pending[record.edge_id] = record
        return self.registry.register(record)  # this replica sees it at once; the others at their next refresh

    async def heartbeat(self, edge_id: str, beat: Heartbeat) -> EdgeRecord | None:
        """Raises KeyError for an edge that no replica knows (its record expired or was never written)."""
        try:
            written = await self._heartbeat(
                keys=[self._key(edge_id), self._index], args=self._args(edge_id, _beat_fields(beat))
            )
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc
        if int(written) < 0:
            raise KeyError(edge_id)
        try:
            return self.registry.heartbeat(edge_id, beat)
        except KeyError:
            return None  # registered through another replica: in this snapshot at the next refresh

    async def deregister(self, edge_id: str) -> bool:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(edge_id))
                pipe.zrem(self._index, edge_id)
                deleted, _ = await pipe.execute()
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc
        self._pending[edge_id] = None
        local = self.registry.deregister(edge_id)
        return bool(deleted) or local

    async def refresh(self) -> None:
        """Replaces the local snapshot with every edge on Redis."""
        self._pending = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(self._index, 0, -1)
            time_reply, members = await pipe.execute()
        now_ms = redis_ms(time_reply)
        ids = [_text(m) for m in members]
        async with self._redis.pipeline(transaction=False) as pipe:
            for edge_id in ids:
                pipe.hgetall(self._key(edge_id))
            pipe.zremrangebyscore(self._index, "-inf", now_ms - self._ttl_ms)  # ids whose record expired
            replies = await pipe.execute()
        now = self.registry.clock()
        records = {
            edge_id: _decode(edge_id, raw, max(0, now_ms - int(raw[b"hb"])) / 1000, now)
            for edge_id, raw in zip(ids, replies[:-1], strict=True)
            if raw
        }
        for edge_id, written in self._pending.items():
            if written is None:
                records.pop(edge_id, None)
            else:
                records.setdefault(edge_id, written)
        self.registry.replace(list(records.values()))

    async def run(self) -> None:
        """Refreshes the snapshot every ``refresh_interval`` until cancelled (staterr.refresh_forever)."""
        await refresh_forever(self.refresh, self.refresh_interval, "edge registry")
