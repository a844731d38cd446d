"""What the benchmarks that put a gRPC service under closed-loop load share: CPU seconds of processes from /proc,
pinning, the closed loop with its latency quantiles, and the reference every such benchmark measures in the same
run on the same machine: a trivial grpc.aio service (one unary echo) in its own process on core 0."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def pin(pid: int, cpu: int) -> None:
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {cpu})


@dataclass
class Result:
    label: str
    calls: int
    seconds: float
    p50: float
    p99: float
    cpu: float  # the server process and, on CQL, the Cassandra node
    server_cpu: float  # the server process alone

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def per_cpu(self) -> float:
        return self.calls / self.cpu if self.cpu else 0.0

    @property
    def per_server_cpu(self) -> float:
        return self.calls / self.server_cpu if self.server_cpu else 0.0


async def closed_loop(
    label: str,
    call: Callable[[int, int], Awaitable[Any]],
    clients: int,
    seconds: float,
    pids: list[int],
    *,
    servers: int = 1,
) -> Result:
    """``clients`` callers for ``seconds``; CPU of every process in ``pids``, of which the first ``servers`` are the
    servers under test."""
    latencies: list[float] = []
    for k in range(clients):  # warm up: connections, prepared statements, caches
        await call(k, 0)
    cpu0, server0 = cpu_seconds(pids), cpu_seconds(pids[:servers])
    start = time.perf_counter()
    deadline = start + seconds

    async def client(k: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            t = time.perf_counter()
            await call(k, n)
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    cpu, server = cpu_seconds(pids) - cpu0, cpu_seconds(pids[:servers]) - server0
    qs = statistics.quantiles(latencies, n=100)
    return Result(label, len(latencies), elapsed, qs[49], qs[98], cpu, server)


def _trivial(ports: Any) -> None:
    async def main() -> None:
        async def echo(request: bytes, context: Any) -> bytes:
            return request

        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "bench.Trivial", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ports.put(port)
        await server.wait_for_termination()

    asyncio.run(main())


async def reference(clients: int, seconds: float) -> Result:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    proc = ctx.Process(target=_trivial, args=(ports,), daemon=True)
    proc.start()
    try:
        address = f"127.0.0.1:{ports.get(timeout=60)}"
        assert proc.pid is not None
        pin(proc.pid, 0)
        async with grpc.aio.insecure_channel(address) as channel:
            echo = channel.unary_unary("/bench.Trivial/Echo", request_serializer=None, response_deserializer=None)

            async def call(k: int, n: int) -> Any:
                return await echo(b"x" * 32)

            return await closed_loop("reference (trivial grpc.aio)", call, clients, seconds, [proc.pid])
    finally:
        proc.terminate()
        proc.join(10)
