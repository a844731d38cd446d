"""One running edge: the Rust data plane started from its config, and the control surface over it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType

from edge.config import EdgeNodeConfig
from marquee.native import EdgeServer


@dataclass
class Usage:
    """A snapshot of what the edge holds and has served, for heartbeats and metrics."""

    active_connections: int
    bytes_sent: int
    cache_used_bytes: int
    cache_capacity_bytes: int
    cached_titles: dict[str, int]


@dataclass
class EgressMeter:
    """Egress in bits/s between two readings of the byte counter."""

    last_bytes: int = 0
    last_time: float = field(default_factory=time.monotonic)

    def rate(self, bytes_sent: int) -> int:
        now = time.monotonic()
        elapsed = max(now - self.last_time, 1e-6)
        bps = int(max(bytes_sent - self.last_bytes, 0) * 8 / elapsed)
        self.last_bytes, self.last_time = bytes_sent, now
        return bps


class EdgeNode:
    """Starts on construction; ``stop`` (or leaving the ``with`` block) releases the port."""

    def __init__(self, config: EdgeNodeConfig) -> None:
        self.config = config
        self._server = EdgeServer(config.data_plane.native_json())

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def origin_url(self) -> str:
        """Where this edge answers, e.g. ``http://127.0.0.1:8081`` (no prefix)."""
        return f"http://{self.config.data_plane.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where players fetch objects: ``{origin_url}{prefix}`` unless a public URL is configured."""
        return self.config.public_base_url or f"{self.origin_url}{self.config.data_plane.prefix}"

    @property
    def pathway_id(self) -> str:
        return self.config.pathway_id or self.name

    @property
    def running(self) -> bool:
        return self._server.running

    def stats(self) -> dict[str, int]:
        return self._server.stats()

    def latency(self) -> tuple[list[float], list[int], float]:
        return self._server.latency()

    def usage(self) -> Usage:
        s = self._server.stats()
        return Usage(
            active_connections=s["active_connections"],
            bytes_sent=s["bytes_sent"],
            cache_used_bytes=s["memory_used_bytes"] + s["disk_used_bytes"],
            cache_capacity_bytes=s["memory_capacity_bytes"] + s["disk_capacity_bytes"],
            cached_titles=self._server.cached_titles(),
        )

    def purge(self, prefix: str) -> int:
        """Drops cached objects whose key starts with ``prefix`` (a title: ``"bbb/"``); returns how many."""
        return self._server.purge(prefix)

    def fetch(self, key: str) -> bytes:
        return self._server.fetch(key)

    def prefetch(self, key: str) -> int:
        return self._server.prefetch(key)

    def revoke_sessions(self, sessions: list[tuple[str, int]]) -> int:
        """Refuses these playback sessions' signed URLs, each until it expires (unix seconds); returns how many
        revoked sessions the node holds."""
        return self._server.revoke_sessions(sessions)

    def set_rate_limit(self, bytes_per_sec: int) -> None:
        if bytes_per_sec < 0:
            raise ValueError("rate limit must be >= 0 bytes/s (0 removes it)")
        self._server.set_rate_limit(bytes_per_sec)

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> EdgeNode:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
