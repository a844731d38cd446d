"""The Python control plane: Prometheus metrics, proactive fill, registration and heartbeats (against the real
SteeringService), purge on re-encode, the per-connection rate limit and configuration errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from edge.config import DataPlaneConfig, DirUpstream, EdgeNodeConfig
from edge.fill import fill, title_objects
from edge.metrics import EdgeCollector
from edge.node import EdgeNode
from edge.plugin import purge_on_reencode
from edge.steering import SteeringReporter
from marquee.native import EdgeServer, InvalidArgumentError
from marquee.v1 import encoding_pb2
from services.common.bus.memory import InMemoryBus
from services.common.config import ServerConfig
from services.common.topics import ENCODING_DONE
from services.steering.config import SteeringConfig
from tests.edge.conftest import TITLE, EdgeFactory
from tests.edge.http import get
from tests.steering.conftest import start_steering


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


async def test_registration_and_heartbeats_with_steering(origin: Path, make_edge: EdgeFactory, tmp_path: Path) -> None:
    edge = make_edge("edge-a", origin)
    await get(edge.port, f"/v/{TITLE}/480p/seg-1.m4s")
    config = SteeringConfig(server=ServerConfig(port=0, drain_delay=0, grace_period=1), heartbeat_interval=0.05)
    async with start_steering(tmp_path, config) as steering, grpc.aio.insecure_channel(steering.address) as channel:
        reporter = SteeringReporter(edge, channel, interval=5.0, credentials=lambda: steering.metadata)
        task = asyncio.create_task(reporter.run())
        try:
            registry = steering.steering.registry

            async def until(check: Callable[[], bool]) -> None:
                for _ in range(400):
                    if check():
                        return
                    await asyncio.sleep(0.01)
                raise AssertionError("steering never saw it")

            await until(lambda: (r := registry.get("edge-a")) is not None and bool(r.cached_titles))
            record = registry.get("edge-a")
            assert record is not None
            assert (record.pathway_id, record.base_uri) == ("edge-a", f"http://127.0.0.1:{edge.port}/v/")
            assert record.cached_titles == frozenset({TITLE})
            assert record.cache_used_bytes == (origin / TITLE / "480p" / "seg-1.m4s").stat().st_size
            assert record.cache_capacity_bytes == 64 << 20
            assert reporter.interval == pytest.approx(0.05), "the edge follows the interval steering asks for"
            # steering restarted and forgot the edge: the next heartbeat gets NOT_FOUND and it registers again
            registry.deregister("edge-a")
            await until(lambda: registry.get("edge-a") is not None and reporter.resource is not None)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await reporter.deregister()
        assert registry.get("edge-a") is None


async def test_a_reencoded_title_is_purged_from_the_edges_of_every_process(
    origin: Path, make_edge: EdgeFactory
) -> None:
    """Two edge-tier processes (here: two followers of one bus, each with its own edges) both purge: each
    process's edges follow in a group of their own."""
    edges = [make_edge("edge-a", origin), make_edge("edge-b", origin)]
    for edge in edges:
        await get(edge.port, f"/v/{TITLE}/480p/seg-1.m4s")
    bus = InMemoryBus()
    tasks = [asyncio.create_task(purge_on_reencode([edge], bus)) for edge in edges]
    await asyncio.sleep(0.05)
    await bus.publish(ENCODING_DONE, b"\xff\xff not a message")
    await bus.publish(ENCODING_DONE, encoding_pb2.EncodingDoneEvent(title=f"titles/{TITLE}").SerializeToString())
    for _ in iter(lambda: any(edge.usage().cached_titles for edge in edges), False):  # until both purged
        await asyncio.sleep(0.01)  # (the test's timeout bounds it)
    for task in tasks:
        task.cancel()
    await bus.close()
    assert [edge.usage().cached_titles for edge in edges] == [{}, {}]


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
