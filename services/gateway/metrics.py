"""The gateway's Prometheus metrics (served by the platform's /metrics endpoint with every other service's).

Label values come from the routing table only: a request for a path the gateway does not route is counted as
``unknown``, so clients cannot create series."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "marquee_gateway_requests_total",
    "gRPC-web requests answered, by service, method, status code and mode (binary or text).",
    ["grpc_service", "grpc_method", "grpc_code", "mode"],
)
LATENCY = Histogram(
    "marquee_gateway_request_seconds",
    "Time from a gRPC-web request's arrival to its final status.",
    ["grpc_service", "grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge("marquee_gateway_in_flight", "gRPC-web requests being proxied now.")
MESSAGES = Counter("marquee_gateway_messages_total", "Messages proxied, by direction.", ["direction"])
MESSAGE_BYTES = Counter("marquee_gateway_message_bytes_total", "Message bytes proxied, by direction.", ["direction"])
REFUSED = Counter(
    "marquee_gateway_refused_total",
    "Requests the gateway answered itself, by reason (rate_limit, in_flight, too_large, malformed, ...).",
    ["reason"],
)
STATIC = Counter("marquee_gateway_static_responses_total", "Static file responses, by HTTP status.", ["status"])
