"""Free TCP ports for servers a test, benchmark or the all-in-one starts itself (Redis, Cassandra, etcd, ...).

A port handed out here is bound later by another process, so the pick must not race the kernel: a port from the
ephemeral range (32768-60999 on Linux) can be taken in between by any outgoing connection's local end, which cost
test runs 'address already in use'. The picks come from below that range instead, and a port handed out once is
not handed out again by this process.
"""

from __future__ import annotations

import random
import socket
import threading

PORTS = range(20000, 32768)
_given: set[tuple[str, int]] = set()
_lock = threading.Lock()


class NoFreePort(OSError):
    """Every port tried was taken."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, below the ephemeral range, and not handed out before by this process."""
    with _lock:
        for port in random.sample(PORTS, 200):
            if (host, port) in _given:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _given.add((host, port))
            return port
    raise NoFreePort(f"no free port on {host} between {PORTS.start} and {PORTS.stop - 1}")
