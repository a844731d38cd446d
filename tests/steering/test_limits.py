"""Session end (410) and overload (429) at the steering HTTP endpoint, with short limits."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from services.common.config import ServerConfig
from services.steering.config import HttpConfig, SteeringConfig
from tests.steering.conftest import Running
from tests.steering.test_service import fetch, steer


@pytest.fixture
def steering_config() -> SteeringConfig:
    return SteeringConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1),
        http=HttpConfig(port=0, max_requests_per_second=20),
        session_idle_timeout=0.5,
    )


async def test_ended_sessions_get_410_and_overload_gets_429(running: Running) -> None:
    r = running
    await r.stub.RegisterEdge(r.edge("edge-a", 8081), metadata=r.metadata)
    await steer(r)
    url = r.signed(f"{r.http.public_url}/steering/hls/s1")
    assert (await fetch(url))[0] == 200
    await asyncio.sleep(0.7)  # idle past the session timeout: the session has ended
    assert (await fetch(url))[0] == 410
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await steer(r)
    assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    statuses = [(await fetch(url))[:2] for _ in range(40)]
    limited = [h for s, h in statuses if s == 429]
    assert limited and all(h["Retry-After"] == "1" for h in limited)
