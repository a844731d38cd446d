"""Steering: GetSteering throughput and latency over gRPC under concurrent clients, and how many titles move to
a new edge when one joins, next to the ideal 1/n of consistent hashing.

The server (SteeringService with 24 edges in 4 coverage zones, two shields) runs in its own process; the load
comes from this one over loopback (one grpc.aio channel per client task group). Every call starts or
re-steers a session (a new one every 10th call), so the bounded-load bookkeeping is exercised.
Run: ./dev bench steering
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from marquee.v1 import steering_pb2 as pb
from marquee.v1 import steering_pb2_grpc
from services.steering.policy import Ring

ZONES = 4
EDGES_PER_ZONE = 6


def serve(data_dir: str, port_queue: multiprocessing.Queue[int]) -> None:
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
            SqliteStore(Path(data_dir) / "s.db"),
            InMemoryBus(),
            InMemoryRateLimiter(),
            platform.auth,
            AccessTokens(platform.auth),
            PageTokens(b"k"),
            url_signing=platform.url_signing,
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


async def load(address: str, md: tuple[tuple[str, str], ...], *, clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, clients // 16))]
    stubs = [steering_pb2_grpc.SteeringServiceStub(c) for c in channels]
    await register(stubs[0], md)
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        stub = stubs[i % len(stubs)]
        n = 0
        while time.perf_counter() < deadline:
            session = f"playbackSessions/c{i}-{n // 10}"
            request = pb.GetSteeringRequest(
                session=session,
                title=f"titles/t{(i * 7919 + n // 10) % 5000}",
                client_address=f"10.{i % ZONES}.{n % 250}.{i % 250}",
                country="US",
            )
            started = time.perf_counter()
            await stub.GetSteering(request, metadata=md, timeout=10)
            latencies.append(time.perf_counter() - started)
            n += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    for c in channels:
        await c.close(None)
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def remapping(titles: int = 100_000) -> None:
    keys = [f"title-{i}" for i in range(titles)]
    print(f"{'edges n -> n+1':>15} {'titles moved':>13} {'ideal 1/(n+1)':>14} {'ratio':>6}")
    for n in (2, 4, 8, 16, 32):
        before = Ring(f"e{i}" for i in range(n))
        after = Ring(f"e{i}" for i in range(n + 1))
        moved = sum(before.walk(k)[0] != after.walk(k)[0] for k in keys) / titles
        ideal = 1 / (n + 1)
        print(f"{f'{n} -> {n + 1}':>15} {moved:>13.4f} {ideal:>14.4f} {moved / ideal:>6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, nargs="*", default=[16, 64])
    args = parser.parse_args()
    from services.common.config import load_config
    from services.platform.admin import admin_metadata

    with tempfile.TemporaryDirectory(prefix="marquee-bench-steering-") as data_dir:
        md = admin_metadata(load_config(data_dir=data_dir))
        ctx = multiprocessing.get_context("spawn")
        ports: multiprocessing.Queue[int] = ctx.Queue()
        proc = ctx.Process(target=serve, args=(data_dir, ports), daemon=True)
        proc.start()
        try:
            address = f"127.0.0.1:{ports.get(timeout=60)}"
            print(
                f"GetSteering over gRPC: {ZONES * EDGES_PER_ZONE} edges in {ZONES} zones + 2 shields, "
                "the server in its own process"
            )
            print(
                f"{'clients':>8} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server CPU':>11} {'server us/call':>15}"
            )
            for clients in args.clients:
                cpu = cpu_seconds(proc.pid)  # type: ignore[arg-type]
                lat = asyncio.run(load(address, md, clients=clients, seconds=args.seconds))
                used = cpu_seconds(proc.pid) - cpu  # type: ignore[arg-type]
                qs = statistics.quantiles(lat, n=100)
                print(
                    f"{clients:>8} {len(lat) / args.seconds:>9.0f} {qs[49] * 1e3:>8.2f} {qs[98] * 1e3:>8.2f} "
                    f"{used / args.seconds:>10.0%} {used / len(lat) * 1e6:>15.0f}"
                )
            print("reference: grpc.aio serves about 4,300 requests/s on one CPU for a trivial service (grpc_bench)")
        finally:
            proc.terminate()
            proc.join(10)
    remapping()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
