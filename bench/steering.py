"""Steering: GetSteering throughput and latency over gRPC under concurrent clients, next to a trivial grpc.aio
service measured in the same run; and how many titles move to a new edge when one joins, next to the ideal 1/n of
consistent hashing.

Each server (SteeringService with 24 edges in 4 coverage zones, two shields) runs in its own process pinned to
core 0; the load comes from this one on core 1 over loopback (one grpc.aio channel per 16 clients). Every call
starts or re-steers a session (a new one every 10th call), so the bounded-load bookkeeping is exercised. Rows:
one replica with its state in memory (the all-in-one); one and two replicas with the edge registry and evidence on
a local redis-server (``[state] kind = "redis"``, issue 17), the clients spread over the replicas (a player's
session stays on one). The replicas and redis-server share core 0 (this machine has two cores), so the two-replica
row shows the cost per core of sharing state, not scaling; "per core" divides by the CPU the servers and
redis-server spent.
Every row is measured in ``--rounds`` rounds, each with its own reference; ratios are the rounds' median.
Run: ./dev bench steering
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from _measure import Result, Rounds, closed_loop, pin, platform_floor, reference  # bench/ is on sys.path

from marquee.v1 import steering_pb2 as pb
from marquee.v1 import steering_pb2_grpc
from services.steering.policy import Ring

ZONES = 4
EDGES_PER_ZONE = 6


def serve(data_dir: str, redis_url: str, port_queue: multiprocessing.Queue[int]) -> None:
    import json

    from services.common.auth import AccessTokens
    from services.common.bus.memory import InMemoryBus
    from services.common.config import ServerConfig, load_config
    from services.common.deps import Dependencies
    from services.common.logs import configure_logging
    from services.common.paging import PageTokens
    from services.common.ratelimit import InMemoryRateLimiter
    from services.common.store.sqlite import SqliteStore
    from services.platform.runtime import local_config
    from services.steering.config import HttpConfig, SteeringConfig
    from services.steering.server import create_server

    async def main() -> None:
        import redis.asyncio as aioredis

        configure_logging("WARNING", "json")
        platform = local_config(load_config(data_dir=data_dir))
        zones = {f"z{i}": {"network": [f"10.{i}.0.0/16"]} for i in range(ZONES)}
        zone_file = Path(data_dir) / "zones.json"
        zone_file.write_text(json.dumps({"coverageZones": zones}))
        config = SteeringConfig(
            server=ServerConfig(port=0, drain_delay=0, grace_period=1, reflection=False),
            http=HttpConfig(port=0),
            coverage_zones=zone_file,
        )
        deps = Dependencies(
            SqliteStore(Path(data_dir) / f"s-{os.getpid()}.db"),
            InMemoryBus(),
            InMemoryRateLimiter(),
            platform.auth,
            AccessTokens(platform.auth),
            PageTokens(b"k"),
            url_signing=platform.url_signing,
            redis_prefix="bench:",
            state_redis=aioredis.Redis.from_url(redis_url) if redis_url else None,
        )
        service = await create_server(config, deps)
        await service.start()
        port_queue.put(service.grpc_port)
        await asyncio.Event().wait()

    asyncio.run(main())


async def register(stub: Any, md: tuple[tuple[str, str], ...]) -> None:
    for z in range(ZONES):
        for e in range(EDGES_PER_ZONE):
            edge_id = f"z{z}-e{e}"
            edge = pb.Edge(
                base_uri=f"http://{edge_id}.test/v/", zone=f"z{z}", role=pb.EDGE_ROLE_EDGE, capacity_bps=10**10
            )
            await stub.RegisterEdge(pb.RegisterEdgeRequest(edge=edge, edge_id=edge_id), metadata=md)
    for s in range(2):
        edge = pb.Edge(base_uri=f"http://shield{s}.test/v/", zone="core", role=pb.EDGE_ROLE_SHIELD, capacity_bps=10**11)
        await stub.RegisterEdge(pb.RegisterEdgeRequest(edge=edge, edge_id=f"shield{s}"), metadata=md)


def request(i: int, n: int) -> pb.GetSteeringRequest:
    return pb.GetSteeringRequest(
        session=f"playbackSessions/c{i}-{n // 10}",
        title=f"titles/t{(i * 7919 + n // 10) % 5000}",
        client_address=f"10.{i % ZONES}.{n % 250}.{i % 250}",
        country="US",
    )


async def measure(
    data_dir: str, label: str, addresses: list[str], pids: list[int], servers: int, clients: int, seconds: float
) -> Result:
    """GetSteering from ``clients`` callers spread over the replicas at ``addresses``, once every replica sees the
    edges registered through the first."""
    from services.common.config import load_config
    from services.platform.admin import admin_metadata

    md = admin_metadata(load_config(data_dir=data_dir))
    channels = [grpc.aio.insecure_channel(a) for a in addresses for _ in range(max(1, clients // 16 // len(addresses)))]
    stubs = [steering_pb2_grpc.SteeringServiceStub(c) for c in channels]
    try:
        await register(stubs[0], md)
        for stub in stubs:  # a replica on Redis sees the registry at its next refresh
            while True:
                try:
                    await stub.GetSteering(request(0, 0), metadata=md, timeout=10)
                    break
                except grpc.aio.AioRpcError as exc:  # no edge known yet
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                await asyncio.sleep(0.1)

        async def call(k: int, n: int) -> Any:
            return await stubs[k % len(stubs)].GetSteering(request(k, n), metadata=md, timeout=10)

        return await closed_loop(label, call, clients, seconds, pids, servers=servers)
    finally:
        for c in channels:
            await c.close(None)


def remapping(titles: int = 100_000) -> None:
    keys = [f"title-{i}" for i in range(titles)]
    print(f"{'edges n -> n+1':>15} {'titles moved':>13} {'ideal 1/(n+1)':>14} {'ratio':>6}")
    for n in (2, 4, 8, 16, 32):
        before = Ring(f"e{i}" for i in range(n))
        after = Ring(f"e{i}" for i in range(n + 1))
        moved = sum(before.walk(k)[0] != after.walk(k)[0] for k in keys) / titles
        ideal = 1 / (n + 1)
        print(f"{f'{n} -> {n + 1}':>15} {moved:>13.4f} {ideal:>14.4f} {moved / ideal:>6.2f}")


def start_replicas(data_dir: str, redis_url: str, n: int) -> tuple[list[Any], list[str]]:
    ctx = multiprocessing.get_context("spawn")
    procs, addresses = [], []
    for _ in range(n):
        ports: multiprocessing.Queue[int] = ctx.Queue()
        proc = ctx.Process(target=serve, args=(data_dir, redis_url, ports), daemon=True)
        proc.start()
        addresses.append(f"127.0.0.1:{ports.get(timeout=60)}")
        assert proc.pid is not None
        pin(proc.pid, 0)
        procs.append(proc)
    return procs, addresses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, nargs="*", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each with its own reference (medians shown)")
    args = parser.parse_args()
    from services.platform.localredis import RedisServer

    os.sched_setaffinity(0, {1})
    print(f"GetSteering over gRPC: {ZONES * EDGES_PER_ZONE} edges in {ZONES} zones + 2 shields; servers on core 0")
    print(f"medians of {args.rounds} rounds, each ratio to its own round's reference (its range in brackets)")
    header = f"{'server':<42} {'clients':>7} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'calls/CPU-s':>11}"
    print(f"{header} {'vs ref':>7} {'range':>11}")
    with tempfile.TemporaryDirectory(prefix="marquee-bench-steering-") as data_dir:
        redis = RedisServer(Path(data_dir) / "redis")
        redis.start()
        try:
            assert redis.pid is not None
            pin(redis.pid, 0)
            for clients in args.clients:
                rounds = Rounds()
                for _ in range(args.rounds):
                    rounds.start(asyncio.run(reference(clients, args.seconds)))
                    rounds.add(asyncio.run(platform_floor(clients, args.seconds)))
                    for label, url, n in (
                        ("1 replica, state in memory", "", 1),
                        ("1 replica, state on Redis", redis.url, 1),
                        ("2 replicas, state on Redis", redis.url, 2),
                    ):
                        asyncio.run(_flush(redis.url))
                        procs, addresses = start_replicas(data_dir, url, n)
                        pids = [p.pid for p in procs] + ([redis.pid] if url else [])
                        try:
                            rounds.add(asyncio.run(measure(data_dir, label, addresses, pids, n, clients, args.seconds)))
                        finally:
                            for p in procs:
                                p.terminate()
                                p.join(10)
                for r in rounds.rows():
                    print(
                        f"{r.label:<42} {clients:>7} {r.rate:>8.0f} {r.p50 * 1e3:>7.2f} {r.p99 * 1e3:>7.2f}"
                        f" {r.per_cpu:>11.0f} {r.ratio:>6.2f}x {f'[{r.ratio_low:.2f}-{r.ratio_high:.2f}]':>11}"
                    )
        finally:
            redis.stop()
    print("vs ref: calls per CPU-second of the servers (and redis-server) over the reference's, same run, same core;")
    print("the echo behind the platform's server (its interceptor and token check) is the most any RPC here can reach")
    remapping()
    return 0


async def _flush(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    await client.flushall()
    await client.aclose()


if __name__ == "__main__":
    raise SystemExit(main())
