"""What the benchmarks that put a gRPC service under closed-loop load share: CPU seconds of processes from /proc,
pinning, the closed loop with its latency quantiles, and the reference every such benchmark measures in the same
run on the same machine: a trivial grpc.aio service (one unary echo) in its own process on core 0.

Next to it, :func:`platform_floor` measures the same echo behind the platform's own server
(services.common.server.build_server: its interceptor, with the access-token check and the deny list): the most
calls per CPU-second any authenticated RPC of a Marquee service can reach on this machine, since every one pays
that before its handler runs. It is context for the ratio, not a second target.

This machine is noisy: the reference's own rate moves by a factor of two between runs. So the benchmarks measure in
rounds (:class:`Rounds`): each round measures the reference and then every row, and a row's ratio is the median,
over the rounds, of its calls per CPU-second over the same round's reference, printed with its spread."""

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
    settle: Callable[[], Awaitable[None]] | None = None,
) -> Result:
    """``clients`` callers for ``seconds``; CPU of every process in ``pids``, of which the first ``servers`` are the
    servers under test. ``settle``, awaited after the load and before the CPU is read, waits for work the calls left
    behind (a write-behind's backlog): its CPU is the calls' too."""
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
    if settle is not None:
        await settle()
    cpu, server = cpu_seconds(pids) - cpu0, cpu_seconds(pids[:servers]) - server0
    qs = statistics.quantiles(latencies, n=100)
    return Result(label, len(latencies), elapsed, qs[49], qs[98], cpu, server)


@dataclass
class Row:
    """One row over every round: the medians of its figures, and of its ratio to each round's reference."""

    label: str
    rate: float
    p50: float
    p99: float
    per_cpu: float
    ratio: float  # median over the rounds of per_cpu / that round's reference per_cpu
    ratio_low: float
    ratio_high: float
    server_ratio: float  # the same for the server processes alone (without the databases)


class Rounds:
    """Results measured in rounds: each round starts with :meth:`start` and its reference, then :meth:`add` adds its
    rows; :meth:`rows` gives each label's medians (the reference's first), in the order the labels were first added."""

    def __init__(self) -> None:
        self._references: list[Result] = []
        self._results: dict[str, list[tuple[Result, Result]]] = {}

    def start(self, reference: Result) -> None:
        self._references.append(reference)
        self.add(reference)

    def add(self, result: Result) -> None:
        if not self._references:
            raise ValueError("a round starts with its reference")
        self._results.setdefault(result.label, []).append((result, self._references[-1]))

    def rows(self) -> list[Row]:
        rows = []
        for label, pairs in self._results.items():
            ratios = [r.per_cpu / ref.per_cpu for r, ref in pairs]
            rows.append(
                Row(
                    label,
                    statistics.median(r.rate for r, _ in pairs),
                    statistics.median(r.p50 for r, _ in pairs),
                    statistics.median(r.p99 for r, _ in pairs),
                    statistics.median(r.per_cpu for r, _ in pairs),
                    statistics.median(ratios),
                    min(ratios),
                    max(ratios),
                    statistics.median(r.per_server_cpu / ref.per_cpu for r, ref in pairs),
                )
            )
        return rows

    @property
    def count(self) -> int:
        return len(self._references)


TRIVIAL = "bench.Trivial"
FLOOR_KEY = "bench-floor-key-0123456789abcdef0123456789"


def _trivial(ports: Any, platform: bool = False) -> None:
    async def main() -> None:
        async def echo(request: bytes, context: Any) -> bytes:
            return request

        def add(server: grpc.aio.Server) -> None:
            handler = grpc.method_handlers_generic_handler(TRIVIAL, {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
            server.add_generic_rpc_handlers((handler,))

        if platform:
            from services.common.config import ServerConfig
            from services.common.denylist import InMemoryDenyList
            from services.common.logs import configure_logging
            from services.common.server import ServiceBinding, build_server

            configure_logging("WARNING", "json")
            config = ServerConfig(host="127.0.0.1", port=0, reflection=False)
            built, port = build_server(
                config, [ServiceBinding(TRIVIAL, add)], tokens=_floor_tokens(), denylist=InMemoryDenyList()
            )
            server = built.grpc
        else:
            server = grpc.aio.server()
            add(server)
            port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ports.put(port)
        await server.wait_for_termination()

    asyncio.run(main())


def _floor_tokens() -> Any:
    from pydantic import SecretStr

    from services.common.auth import AccessTokens
    from services.common.config import AuthConfig

    return AccessTokens(AuthConfig(keys={"k1": SecretStr(FLOOR_KEY)}, signing_kid="k1"))


async def reference(clients: int, seconds: float) -> Result:
    """The trivial grpc.aio service: the reference every ratio divides by."""
    return await _echo_service("reference (trivial grpc.aio)", clients, seconds, platform=False)


async def platform_floor(clients: int, seconds: float) -> Result:
    """The same echo behind the platform's server and its token check, called with a valid access token."""
    return await _echo_service("the echo behind the platform's server", clients, seconds, platform=True)


async def _echo_service(label: str, clients: int, seconds: float, *, platform: bool) -> Result:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    proc = ctx.Process(target=_trivial, args=(ports, platform), daemon=True)
    proc.start()
    try:
        address = f"127.0.0.1:{ports.get(timeout=60)}"
        assert proc.pid is not None
        pin(proc.pid, 0)
        metadata: tuple[tuple[str, str], ...] = ()
        if platform:
            metadata = (("authorization", f"Bearer {_floor_tokens().issue('bench-account', profile_id='p').token}"),)
        async with grpc.aio.insecure_channel(address) as channel:
            echo = channel.unary_unary(f"/{TRIVIAL}/Echo", request_serializer=None, response_deserializer=None)

            async def call(k: int, n: int) -> Any:
                return await echo(b"x" * 32, metadata=metadata)

            return await closed_loop(label, call, clients, seconds, [proc.pid])
    finally:
        proc.terminate()
        proc.join(10)
