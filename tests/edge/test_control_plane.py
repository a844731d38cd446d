"""The Python control plane: Prometheus metrics, proactive fill, steering heartbeats, purge on re-encode, the
per-connection rate limit and configuration errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from edge.config import DataPlaneConfig, DirUpstream, EdgeNodeConfig
from edge.fill import fill, title_objects
from edge.metrics import EdgeCollector
from edge.node import EdgeNode
from edge.plugin import purge_on_reencode
from edge.steering import SteeringReporter
from marquee.native import EdgeServer, InvalidArgumentError
from marquee.v1 import encoding_pb2, steering_pb2, steering_pb2_grpc
from services.common.bus.memory import InMemoryBus
from services.common.topics import ENCODING_DONE
from tests.edge.conftest import TITLE, EdgeFactory
from tests.edge.http import get


async def test_prometheus_metrics(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    key = f"/v/{TITLE}/480p/seg-1.m4s"
    size = (origin / key.removeprefix("/v/")).stat().st_size
    await get(edge.port, key)
    await get(edge.port, key)
    await get(edge.port, f"/v/{TITLE}/480p/seg-99.m4s")
    registry = CollectorRegistry()
    registry.register(EdgeCollector(lambda: [edge]))
    text = generate_latest(registry).decode()
    expect = [
        'marquee_edge_requests_total{edge="edge-a"} 3.0',
        'marquee_edge_cache_hits_total{edge="edge-a",tier="memory"} 1.0',
        'marquee_edge_cache_misses_total{edge="edge-a"} 2.0',
        f'marquee_edge_cache_hit_bytes_total{{edge="edge-a",tier="memory"}} {float(size)}',
        'marquee_edge_upstream_fetches_total{edge="edge-a"} 2.0',
        'marquee_edge_responses_total{code_class="4xx",edge="edge-a"} 1.0',
        'marquee_edge_byte_hit_ratio{edge="edge-a"} 0.5',
        'marquee_edge_response_seconds_count{edge="edge-a"} 3.0',
        'marquee_edge_cache_objects{edge="edge-a",tier="memory"} 1.0',
    ]
    for line in expect:
        assert line in text, line


async def test_fill_prefetches_whole_titles_within_the_bandwidth_cap(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    keys = title_objects(TITLE, json.loads((origin / TITLE / "media.json").read_text()))
    total = sum((origin / k).stat().st_size for k in keys) + (origin / TITLE / "media.json").stat().st_size
    cap = total * 8 // 2  # the whole title at this cap takes about two seconds
    report = await fill(edge, [TITLE, "no-such-title"], bandwidth_bps=cap)
    assert report.missing == ["no-such-title"]
    assert (report.titles, report.objects, report.fetched_bytes) == (1, len(keys), total)
    assert report.seconds >= 1.5, "the fill did not run ahead of its bandwidth cap"
    for key in keys:
        assert (await get(edge.port, f"/v/{key}")).headers["x-cache"] == "HIT-MEMORY"
    again = await fill(edge, [TITLE], bandwidth_bps=cap)
    assert again.fetched_bytes == 0, "cached objects cost no upstream bandwidth"
    with pytest.raises(ValueError):
        await fill(edge, [TITLE], bandwidth_bps=0)


async def test_rate_limit_shapes_each_connection(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    key = f"/v/{TITLE}/480p/seg-2.m4s"
    size = len((await get(edge.port, key)).body)
    rate = size // 2  # bytes/s: the body takes about two seconds, less the initial burst of rate/4
    edge.set_rate_limit(rate)
    started = time.monotonic()
    slow = await get(edge.port, key)
    assert slow.status == 200 and len(slow.body) == size
    assert time.monotonic() - started >= 1.5
    edge.set_rate_limit(0)
    with pytest.raises(ValueError):
        edge.set_rate_limit(-1)


class RecordingSteering(steering_pb2_grpc.SteeringServiceServicer):
    """Steering's registration contract, recording what edges send (the steering service itself is issue 5)."""

    def __init__(self) -> None:
        self.registered: list[steering_pb2.RegisterEdgeRequest] = []
        self.heartbeats: list[steering_pb2.HeartbeatRequest] = []
        self.forget = False
        self.called = asyncio.Event()

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            await asyncio.wait_for(self.called.wait(), 10)
            self.called.clear()

    async def RegisterEdge(self, request, context):  # type: ignore[no-untyped-def]
        self.registered.append(request)
        self.called.set()
        edge = steering_pb2.Edge()
        edge.CopyFrom(request.edge)
        edge.name = f"edges/{request.edge_id}"
        return steering_pb2.RegisterEdgeResponse(edge=edge, heartbeat_interval=Duration(nanos=50_000_000))

    async def Heartbeat(self, request, context):  # type: ignore[no-untyped-def]
        if self.forget:
            self.forget = False
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown edge")
        self.heartbeats.append(request)
        self.called.set()
        return steering_pb2.HeartbeatResponse(heartbeat_interval=Duration(nanos=50_000_000))

    async def DeregisterEdge(self, request, context):  # type: ignore[no-untyped-def]
        return steering_pb2.DeregisterEdgeResponse()


async def test_registration_and_heartbeats(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    await get(edge.port, f"/v/{TITLE}/480p/seg-1.m4s")
    steering = RecordingSteering()  # type: ignore[abstract]  # only the edge-facing RPCs
    server = grpc.aio.server()
    steering_pb2_grpc.add_SteeringServiceServicer_to_server(steering, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            reporter = SteeringReporter(edge, channel, interval=5.0)
            task = asyncio.create_task(reporter.run())
            await steering.until(lambda: len(steering.heartbeats) >= 2)
            steering.forget = True  # steering restarted and lost its registry: the edge registers again
            await steering.until(lambda: len(steering.registered) >= 2 and len(steering.heartbeats) >= 3)
            task.cancel()
            await reporter.deregister()
    finally:
        await server.stop(None)
    reg = steering.registered[0]
    assert (reg.edge_id, reg.edge.pathway_id, reg.edge.role) == ("edge-a", "edge-a", steering_pb2.EDGE_ROLE_EDGE)
    assert reg.edge.base_uri == f"http://127.0.0.1:{edge.port}/v/"
    beat = steering.heartbeats[-1]
    assert beat.edge == "edges/edge-a" and beat.healthy
    assert list(beat.cached_titles) == [TITLE]
    assert beat.cache_used_bytes == (origin / TITLE / "480p" / "seg-1.m4s").stat().st_size
    assert beat.cache_capacity_bytes == 64 << 20
    assert reporter.interval == pytest.approx(0.05)


async def test_a_reencoded_title_is_purged_from_the_edges(origin: Path, make_edge: EdgeFactory) -> None:
    edge = make_edge("edge-a", origin)
    await get(edge.port, f"/v/{TITLE}/480p/seg-1.m4s")
    bus = InMemoryBus()
    task = asyncio.create_task(purge_on_reencode([edge], bus))
    await asyncio.sleep(0.05)
    await bus.publish(ENCODING_DONE, b"\xff\xff not a message")
    await bus.publish(ENCODING_DONE, encoding_pb2.EncodingDoneEvent(title=f"titles/{TITLE}").SerializeToString())
    for _ in range(200):
        if not edge.usage().cached_titles:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await bus.close()
    assert edge.usage().cached_titles == {}


def test_bad_configuration_is_refused(tmp_path: Path) -> None:
    up = DirUpstream(root=tmp_path)
    with pytest.raises(ValidationError, match="disk_dir"):
        DataPlaneConfig(name="e", upstream=up, disk_bytes=10)
    with pytest.raises(ValidationError):
        DataPlaneConfig(name="bad name!", upstream=up)
    with pytest.raises(ValidationError):
        DataPlaneConfig(name="e", upstream=up, max_header_bytes=100)
    busy = EdgeNode(EdgeNodeConfig(data_plane=DataPlaneConfig(name="e", upstream=up)))
    try:
        taken = DataPlaneConfig(name="f", upstream=up, port=busy.port, host="127.0.0.1")
        with pytest.raises(OSError):
            # SO_REUSEADDR does not allow two listeners on one port
            EdgeNode(EdgeNodeConfig(data_plane=taken))
    finally:
        busy.stop()
    with pytest.raises(InvalidArgumentError, match="edge config"):
        EdgeServer('{"name": "x"}')
