"""Free TCP ports for servers started by a parent that must know their ports first: the test suite's and the
benchmarks' Redis, Cassandra and etcd, and the distributed all-in-one's children (their addresses go into every
child's config before any starts).

A port picked now is bound later by another process, so the pick must not race the kernel: a port in the
ephemeral range can be taken in between by any outgoing connection's local end (which once made a replica fail to
start, and cost test runs etcd's 'address already in use'). Picks come from outside that range, and a port handed
out once is not handed out again by this process.
"""

from __future__ import annotations

import functools
import random
import socket
import threading
from pathlib import Path

LOWEST = 20_000
_given: set[tuple[str, int]] = set()
_lock = threading.Lock()


class NoFreePort(OSError):
    """Every port tried was taken."""


@functools.cache
def _candidates() -> list[int]:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return [p for p in range(LOWEST, 65_536) if not low <= p <= high]


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, outside the kernel's ephemeral range, not handed out before by this process."""
    candidates = _candidates()
    with _lock:
        for port in random.sample(candidates, min(1000, len(candidates))):
            if (host, port) in _given:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _given.add((host, port))
            return port
    raise NoFreePort(f"no free port on {host} outside the ephemeral range")
