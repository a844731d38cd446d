"""The native ingest front: the playback service's public gRPC listener when positions live on Redis.

Every player reports its position every few seconds for as long as it plays, so UpdatePosition is most of the
service's calls. A grpc.aio handler cannot serve it at the throughput the platform targets: authenticating a
call in Python costs more than a whole trivial grpc.aio call. The front (``marquee._native.IngestFront``, Rust on
its own threads, no GIL) listens on the service's gRPC address and

- answers UpdatePosition itself when the call is the fully valid common case the servicer has already decided:
  a token the servicer verified (and the deny list on Redis does not name), a live session of that token's
  profile the servicer served, whose lease is not yet due for extension, and a valid report short of finishing
  the title. It does what the servicer's Redis path does (the deny list's MGET, then the positions script,
  whose text and keys come from :class:`~services.playback.positions_redis.RedisPositions`) and answers what
  the servicer would;
- hands every other call, unchanged, to the grpc.aio server on a private loopback port, with the client's
  address (``x-marquee-peer``, believed only beside this process's secret: services.common.peer).

So errors, lease extensions, completions and seeding a position from the store have one implementation, the
servicer's, which admits tokens and sessions to the front (:meth:`IngestFront.admit`) each time it serves a
position report, and forgets a session when it ends. A session ended by another replica is forgotten when its
lease comes due (at most half the session timeout), as the servicer's own session cache does.

Counters (served, forwarded, declined by reason) and the served calls' latency are exported as Prometheus
metrics by :class:`IngestCollector`, and the calls answered here count in the RPC metrics every service exports
(``marquee_grpc_server_handled_total`` and ``_handling_seconds``, see services.common.metrics.RpcMetrics) as the
interceptor counts the rest, so dashboards and error-budget alerts see all of them. Calls served natively are not
access-logged one by one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterator
from itertools import accumulate

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from marquee.native import IngestFront as NativeFront
from services.common import peer
from services.common.auth import AccessTokens
from services.common.config import RedisConfig, ServerConfig
from services.common.context import Principal
from services.common.denylist_redis import RedisDenyList
from services.common.deps import Dependencies
from services.common.metrics import RPC_METRICS, NativeRpcs, split_method
from services.common.store.port import Row
from services.common.timevalues import EARLIEST_EVENT_SECONDS
from services.playback.config import PlaybackConfig
from services.playback.positions import MAX_CLOCK_SKEW_MS
from services.playback.positions_redis import RedisPositions
from services.playback.servicer import POSITION_SLACK_MS

log = logging.getLogger("marquee.playback.ingest")

METHOD = "/marquee.v1.PlaybackService/UpdatePosition"
CAPACITY = 50_000  # admitted tokens and sessions kept, each (about 1 KB an entry with its token: 50 MB at most)
DECLINES = ("request", "token", "session", "report", "revoked", "seed", "redis")


class IngestFront:
    """A bound front (serving nothing until :meth:`serve`) over the grpc.aio server at ``backend_port``."""

    def __init__(
        self,
        server: ServerConfig,
        backend_port: int,
        redis: RedisConfig,
        positions: RedisPositions,
        deny_prefix: str,
        tokens: AccessTokens,
        *,
        finished_fraction: float,
        position_slack_ms: int,
    ) -> None:
        self._secret = secrets.token_hex(16)
        self._tokens = tokens
        settings = {
            "host": server.host,
            "port": server.port,
            "backend": f"127.0.0.1:{backend_port}",
            "method": METHOD,
            "peer_secret": self._secret,
            "max_message_bytes": server.max_receive_message_bytes,
            "capacity": CAPACITY,
            "redis_url": redis.url,
            "redis_password": redis.password.get_secret_value() if redis.password else None,
            "deny_prefix": deny_prefix,
            "positions_prefix": positions.key_prefix,
            "update_stream": positions.stream,
            "update_script": positions.update_script,
            "stream_max_len": positions.stream_max_len,
            "idle_ms": positions.idle_ms,
            "finished_fraction": finished_fraction,
            "position_slack_ms": position_slack_ms,
            "max_clock_skew_micros": MAX_CLOCK_SKEW_MS * 1000,
            "earliest_event_seconds": EARLIEST_EVENT_SECONDS,
        }
        self._native = NativeFront(json.dumps(settings))
        peer.trust_front(self._secret)

    @property
    def port(self) -> int:
        return self._native.port

    @property
    def address(self) -> str:
        return f"{self._native.host}:{self._native.port}"

    async def serve(self) -> None:
        self._native.serve()

    async def stop(self, grace: float = 1.0) -> None:
        """Stops serving (idempotent): connections get a GOAWAY, calls in flight up to ``grace`` seconds to finish.
        After the grpc.aio server stopped, so that its drain went through the front."""
        await asyncio.to_thread(self._native.stop, grace)
        peer.distrust_front(self._secret)
        if self in COLLECTOR.fronts:
            COLLECTOR.fronts.remove(self)
        RPC_METRICS.retire(self.rpcs)

    def rpcs(self) -> list[NativeRpcs]:
        """The UpdatePosition calls answered here (which the interceptor never sees), for the RPC metrics."""
        bounds, counts, seconds = self._native.latency()
        service, method = split_method(METHOD)
        return [NativeRpcs(service, method, {"OK": self._native.stats()["served"]}, bounds, counts, seconds)]

    def stats(self) -> dict[str, int]:
        return self._native.stats()

    def snapshot(self) -> tuple[dict[str, int] | None, tuple[list[float], list[int], float] | None]:
        """Counters and the latency histogram, or (None, None) once stopped."""
        if not self._native.running:
            return None, None
        try:
            return self._native.stats(), self._native.latency()
        except OSError:  # stopped meanwhile
            return None, None

    def admit(self, principal: Principal, token: str | None, session: Row, expire: int, renew: int, url: str) -> None:
        """After the servicer answered a position report: the front may answer the next ones with ``token`` for
        ``session`` itself, until ``renew`` (unix microseconds, when the lease is due for extension)."""
        valid_until = self._tokens.valid_until(token) if token is not None else None
        if token is None or valid_until is None or principal.profile_id is None or not self._native.running:
            return
        self._native.admit_token(
            token, principal.account_id, principal.profile_id, principal.session_id, principal.issued_at, valid_until
        )
        self._native.admit_session(
            session["session_id"],
            session["account_id"],
            session["profile_id"],
            session["title_id"],
            session["runtime_ms"],
            session["region"],
            expire,
            renew,
            url,
        )

    def forget(self, session_id: str) -> None:
        if self._native.running:
            self._native.forget_session(session_id)


class IngestCollector(Collector):
    """The counters of every front in the process and the latency of the calls they served, at scrape time,
    labelled by the front's address."""

    def __init__(self) -> None:
        self.fronts: list[IngestFront] = []

    def collect(self) -> Iterator[Metric]:
        labels = ("front",)
        calls = CounterMetricFamily(
            "marquee_playback_ingest_calls",
            "Calls reaching the front, by where they were answered.",
            labels=(*labels, "path"),
        )
        declined = CounterMetricFamily(
            "marquee_playback_ingest_declined",
            "UpdatePosition calls the fast path handed to the servicer, by reason.",
            labels=(*labels, "reason"),
        )
        errors = CounterMetricFamily(
            "marquee_playback_ingest_forward_errors",
            "Forwarded calls the grpc.aio server did not answer.",
            labels=labels,
        )
        admitted = GaugeMetricFamily(
            "marquee_playback_ingest_admitted",
            "Tokens and sessions admitted to the fast path.",
            labels=(*labels, "kind"),
        )
        latency = HistogramMetricFamily(
            "marquee_playback_ingest_served_seconds",
            "Time to answer an UpdatePosition call on the fast path.",
            labels=labels,
        )
        for front in list(self.fronts):
            stats, histogram = front.snapshot()
            if stats is None or histogram is None:
                continue
            name = [front.address]
            calls.add_metric([*name, "native"], stats["served"])
            calls.add_metric([*name, "forwarded"], stats["forwarded"])
            for reason in DECLINES:
                declined.add_metric([*name, reason], stats[f"declined_{reason}"])
            errors.add_metric(name, stats["forward_errors"])
            admitted.add_metric([*name, "tokens"], stats["admitted_tokens"])
            admitted.add_metric([*name, "sessions"], stats["admitted_sessions"])
            bounds, counts, total = histogram
            cumulative = list(accumulate(counts))
            buckets = [(f"{b:g}", c) for b, c in zip(bounds, cumulative, strict=False)]
            latency.add_metric(name, [*buckets, ("+Inf", cumulative[-1])], total)
        yield from (calls, declined, errors, admitted, latency)


COLLECTOR = IngestCollector()
REGISTRY.register(COLLECTOR)


def front_on(port: int) -> IngestFront | None:
    """The running front of this process listening on ``port``, if any."""
    return next((f for f in COLLECTOR.fronts if f.port == port), None)


def native_front_possible(positions: object, deps: Dependencies) -> bool:
    """The front serves the Redis hot path: positions and the deny list on Redis, reached over redis:// (the
    front's client does not speak TLS; with rediss:// the grpc.aio server listens alone)."""
    redis = deps.redis_server
    possible = isinstance(positions, RedisPositions) and isinstance(deps.denylist, RedisDenyList) and redis is not None
    if possible and redis is not None and not redis.url.startswith("redis://"):
        log.warning("the native ingest front is off: it does not speak TLS to Redis (%s)", redis.url)
        return False
    return possible


def open_front(config: PlaybackConfig, deps: Dependencies, positions: object, backend_port: int) -> IngestFront:
    """The front on ``config.server``'s address over the grpc.aio server at ``backend_port`` (bound, not serving);
    :func:`native_front_possible` must hold."""
    if not isinstance(positions, RedisPositions) or not isinstance(deps.denylist, RedisDenyList):
        raise TypeError("the native front needs positions and the deny list on Redis")
    if deps.redis_server is None:
        raise TypeError("the native front needs the [redis] server")
    front = IngestFront(
        config.server,
        backend_port,
        deps.redis_server,
        positions,
        deps.denylist.prefix,
        deps.tokens,
        finished_fraction=config.finished_fraction,
        position_slack_ms=POSITION_SLACK_MS,
    )
    COLLECTOR.fronts.append(front)
    RPC_METRICS.add_source(front.rpcs)
    return front
