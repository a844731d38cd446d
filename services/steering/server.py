"""``create_server``: SteeringService over gRPC and the content steering manifests over HTTP."""

from __future__ import annotations

from marquee.v1 import steering_pb2_grpc
from services.common.deps import Dependencies
from services.common.http import HttpSite
from services.common.server import Server, ServiceBinding, build_server
from services.steering.config import SteeringConfig
from services.steering.http import reload_uri, start_http
from services.steering.servicer import SERVICE_NAME, SteeringServicer
from services.steering.steerer import Steering
from services.steering.zones import CoverageZones

# The all-in-one's coverage: every address is in zone "local", whose edges register with zone "local".
LOCAL_ZONES = {"coverageZones": {"local": {"network": ["0.0.0.0/0"], "network6": ["::/0"]}}}


async def create_server(config: SteeringConfig, deps: Dependencies) -> tuple[Server, int, HttpSite, Steering]:
    """Build the gRPC server (not started) and start the HTTP endpoint; stopping the server stops both."""
    zones = CoverageZones.load(config.coverage_zones) if config.coverage_zones else CoverageZones.from_dict(LOCAL_ZONES)
    steering = Steering(config, zones)
    http = await start_http(steering, config.http, deps.rate_limiter)
    servicer = SteeringServicer(steering, deps.page_tokens, lambda kind, sid: reload_uri(http, kind, sid))
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: steering_pb2_grpc.add_SteeringServiceServicer_to_server(servicer, server),
    )
    try:
        server, port = build_server(config.server, [binding], tokens=deps.tokens)
    except Exception:
        await http.stop()
        raise
    server.add_on_stop(http.stop)
    return server, port, http, steering
