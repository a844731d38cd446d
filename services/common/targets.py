"""Where a service's replicas are: an address in ``[addresses]`` (or the gateway's routes) is one ``host:port``, or
several, comma-separated (``10.0.0.1:50052,10.0.0.2:50052``), or ``dns:///name:port`` (a headless Kubernetes
Service resolving to every pod). Several replicas are called round robin, and a replica whose grpc.health.v1 says
NOT_SERVING (shutting down) or that cannot be reached is skipped (gRPC client-side health checking).

A replica that went away is tried again at least every ``MAX_RECONNECT_BACKOFF_MS`` (gRPC's default backoff grows
to two minutes): a restarted pod, or the one replica of a service that restarted, is called again within seconds
of coming back."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

# round robin over the resolved addresses, each checked through grpc.health.v1 (the overall service "")
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})

MAX_RECONNECT_BACKOFF_MS = 2_000
_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def channel_target(address: str) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and channel options for an address of one replica or many."""
    balanced = [*_RECONNECT, ("grpc.service_config", _SERVICE_CONFIG)]
    if address.startswith("dns:"):
        return address, balanced
    parts = [p.strip() for p in address.split(",") if p.strip()]
    if len(parts) == 1:
        return parts[0], list(_RECONNECT)
    hosts = [p.rpartition(":")[0] for p in parts]
    if all(_is_ip(h) for h in hosts):
        scheme = "ipv6" if all(":" in h.strip("[]") for h in hosts) else "ipv4"
        # gRPC would send the whole list as the calls' :authority, which is no valid authority: servers that check
        # it (playback's native front, any HTTP/2 proxy) refuse such calls; the first replica's address is one
        return f"{scheme}:{','.join(parts)}", [*balanced, ("grpc.default_authority", parts[0])]
    raise ValueError(f"{address!r}: several replicas are given as IP:port,IP:port or one dns:///name:port")


def is_address(address: str) -> bool:
    """Whether ``address`` is one host:port, several, or a dns:/// target (what [addresses] accepts)."""
    if address.startswith("dns:"):
        return True
    parts = [p.strip() for p in address.split(",")]
    for part in parts:
        host, sep, port = part.rpartition(":")
        if not (host and sep and port.isdigit()):
            return False
    try:
        channel_target(address)
    except ValueError:
        return False
    return True
