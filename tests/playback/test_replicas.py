"""Plan stream limits hold across playback replicas: the slots are rows of the shared store, claimed by
compare-and-set, so two PlaybackService processes (here two servers, each with Dependencies of its own: its own
bus, limiter and deny list, sharing only the store and the catalog and steering they call) never grant more streams
than the plan allows between them, even when the claims race."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from marquee.v1 import playback_pb2 as pb
from marquee.v1 import playback_pb2_grpc
from services.common.bus.memory import InMemoryBus
from services.common.denylist import InMemoryDenyList
from services.common.ratelimit import InMemoryRateLimiter
from services.playback.config import PlaybackConfig
from services.playback.server import create_server as create_playback
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback
from tests.playback.test_playback import fails, start


@asynccontextmanager
async def another_replica(
    p: Playback, playback_config: PlaybackConfig, origin: Path, bus: InMemoryBus | None = None
) -> AsyncIterator[playback_pb2_grpc.PlaybackServiceAsyncStub]:
    """A replica on the same store; on a bus of its own unless ``bus`` (one replicas share, the caller's) is given."""
    own_bus = bus is None
    bus = InMemoryBus() if bus is None else bus
    deps = dataclasses.replace(p.deps, bus=bus, rate_limiter=InMemoryRateLimiter(), denylist=InMemoryDenyList())
    service = await create_playback(playback_config.model_copy(update={"origin": origin}), deps)
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
            yield playback_pb2_grpc.PlaybackServiceStub(channel)
    finally:
        await service.stop()
        if own_bus:
            await bus.close()


@pytest.fixture
async def second(
    playback: Playback, playback_config: PlaybackConfig, origin: Path
) -> AsyncIterator[playback_pb2_grpc.PlaybackServiceAsyncStub]:
    async with another_replica(playback, playback_config, origin) as stub:
        yield stub


async def test_the_plan_limit_holds_across_replicas(
    playback: Playback, second: playback_pb2_grpc.PlaybackServiceAsyncStub
) -> None:
    md = playback.caller("r1", "p1", plan="premium")  # two streams at once
    profile = "accounts/r1/profiles/p1"
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile=profile)
    first = await start(playback, md, profile=profile)
    await second.StartPlayback(request, metadata=md)
    await fails(start(playback, md, profile=profile), grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_LIMIT_REACHED")
    await fails(second.StartPlayback(request, metadata=md), grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_LIMIT_REACHED")
    # a session started on one replica is stopped on the other, and its slot is free for either
    await second.StopPlayback(pb.StopPlaybackRequest(session=first.name), metadata=md)
    await second.StartPlayback(request, metadata=md)
    await fails(start(playback, md, profile=profile), grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_LIMIT_REACHED")


async def test_racing_starts_on_two_replicas_get_only_the_plans_streams(
    playback: Playback, second: playback_pb2_grpc.PlaybackServiceAsyncStub
) -> None:
    for account, plan, allowed in (("r2", "basic", 1), ("r3", "premium", 2)):
        md = playback.caller(account, "p1", plan=plan)
        request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile=f"accounts/{account}/profiles/p1")
        stubs = [playback.stub, second] * 3
        outcomes = await asyncio.gather(
            *(stub.StartPlayback(request, metadata=md) for stub in stubs), return_exceptions=True
        )
        granted = [o for o in outcomes if isinstance(o, pb.StartPlaybackResponse)]
        refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(granted) == allowed and len(refused) == len(stubs) - allowed, outcomes
        assert all(err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for err in refused), refused
        assert len({o.session.name for o in granted}) == allowed
