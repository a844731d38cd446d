"""Failover with real edge processes: a killed edge leaves every steering answer within the heartbeat timeout
and comes back when it recovers; a stopped edge deregisters at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from marquee.v1 import steering_pb2 as pb
from services.common.config import ServerConfig
from services.steering.config import HttpConfig, SteeringConfig
from tests.steering.conftest import Running

TIMEOUT = 1.0


@pytest.fixture
def steering_config() -> SteeringConfig:
    return SteeringConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1),
        http=HttpConfig(port=0),
        heartbeat_interval=0.2,
        heartbeat_timeout=TIMEOUT,
    )


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    origin = tmp_path / "origin" / "t" / "r"
    origin.mkdir(parents=True)
    (origin / "seg-1.m4s").write_bytes(os.urandom(1000))
    procs: list[subprocess.Popen[str]] = []

    def start(running: Running, name: str) -> subprocess.Popen[str]:
        ready = tmp_path / f"{name}.json"
        ready.unlink(missing_ok=True)
        args = ["--data-dir", str(running.data_dir), "--name", name, "--upstream", str(tmp_path / "origin")]
        args += ["--no-tokens", "--steering", running.address, "--heartbeat-interval", "0.2"]
        args += ["--ready-file", str(ready)]
        proc = subprocess.Popen([sys.executable, "-m", "edge", *args], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, "the edge process exited"
            assert time.monotonic() < deadline, "the edge process did not start"
            time.sleep(0.05)
        assert json.loads(ready.read_text())["port"] > 0
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


# Only a guard against a hang: edges register as soon as their process runs, however slowly the machine starts it.
REGISTER_BOUND = 120.0


async def pathways(r: Running, session: str) -> list[str]:
    request = pb.GetSteeringRequest(session=f"playbackSessions/{session}", title="titles/t", client_address="10.0.0.1")
    reply = await r.stub.GetSteering(request, metadata=r.metadata)
    return [p.id for p in reply.pathways]


async def until(check: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Polls an async check until true; returns how long it took (the test fails past ``seconds``)."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, "not within the deadline"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_session_that_started_before_any_edge_keeps_waiting_for_one(
    running: Running, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    """A player that asks before any edge registered is told UNAVAILABLE, and stays a live session: it was once
    ended at its next call (idle since the clock's zero), so it never got an edge."""
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pathways(running, "early")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    spawn(running, "edge-a")

    async def served() -> bool:
        try:
            return "edge-a" in await pathways(running, "early")
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return False

    await until(served, REGISTER_BOUND)


async def test_a_killed_edge_leaves_every_answer_and_comes_back(
    running: Running, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    r = running
    edge_a = spawn(r, "edge-a")
    edge_b = spawn(r, "edge-b")

    async def both() -> bool:
        try:
            return {"edge-a", "edge-b"} <= set(await pathways(r, "watcher"))
        except grpc.aio.AioRpcError as err:  # no edge has registered yet (a busy machine starts them slowly)
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return False

    await until(both, REGISTER_BOUND)
    edge_a.send_signal(signal.SIGKILL)
    edge_a.wait(10)

    async def a_gone() -> bool:
        fresh = await pathways(r, f"probe-{time.monotonic_ns()}")
        async with aiohttp.ClientSession() as s, s.get(r.signed(f"{r.http.public_url}/steering/hls/watcher")) as resp:
            watcher = (await resp.json())["PATHWAY-PRIORITY"]
        return "edge-a" not in fresh and "edge-a" not in watcher

    waited = await until(a_gone, TIMEOUT + 5)
    print(f"edge-a left every answer {waited:.2f} s after SIGKILL (heartbeat timeout {TIMEOUT} s)")
    assert await pathways(r, "watcher") == ["edge-b"]
    spawn(r, "edge-a")
    await until(both, REGISTER_BOUND)
    # a graceful stop deregisters at once
    edge_b.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(edge_b.wait, 10) == 0  # the steering server must keep serving meanwhile
    listed = await r.stub.ListEdges(pb.ListEdgesRequest(), metadata=r.metadata)
    assert [e.name for e in listed.edges] == ["edges/edge-a"]
