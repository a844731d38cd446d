"""free_port: outside the kernel's ephemeral range, free, and never the same port twice in a process."""

from __future__ import annotations

import socket
from pathlib import Path

from services.common.ports import free_port


def test_ports_are_free_outside_the_ephemeral_range_and_never_repeated() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= p <= high and p >= 20_000 for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # free when handed out
