"""Prometheus metrics: RED per RPC (rate, errors, duration) and the HTTP endpoint that exposes them."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

RPC_REQUESTS = Counter(
    "marquee_grpc_server_handled_total",
    "RPCs completed on the server, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_LATENCY = Histogram(
    "marquee_grpc_server_handling_seconds",
    "Time from receiving an RPC to its final status.",
    ["grpc_service", "grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RPC_IN_FLIGHT = Gauge("marquee_grpc_server_in_flight", "RPCs being handled now.", ["grpc_service", "grpc_method"])


def split_method(full_method: str) -> tuple[str, str]:
    """'/marquee.v1.AccountService/SignIn' -> ('marquee.v1.AccountService', 'SignIn')."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


@dataclass
class MetricsEndpoint:
    """A running /metrics HTTP endpoint; ``port`` is the bound port (useful when 0 was asked)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_metrics_endpoint(host: str = "127.0.0.1", port: int = 0) -> MetricsEndpoint:
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    return MetricsEndpoint(server, thread)
