"""Playback: UpdatePosition throughput and p99 with the server on one core, against the reference measured in the
same run on the same core (a trivial grpc.aio service, bench/_measure.py); and StartPlayback p99.

The all-in-one platform runs catalog, steering, an edge and playback (``marquee up --only ...``) pinned to CPU 0;
the load comes from this process on the other core. Every UpdatePosition is a real one: token check, session
and stream-slot renewal, a compare-and-set on the position row committed to SQLite (synchronous=FULL), an event.
The reference, the platform's floor and UpdatePosition are measured in ``--rounds`` rounds; ratios are the median.
Run: ./dev bench playback
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from _measure import Rounds, closed_loop, platform_floor, reference  # bench/ is on sys.path when a script here runs
from google.protobuf import duration_pb2, timestamp_pb2

from marquee.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2, playback_pb2, playback_pb2_grpc

TITLE = "bench-title"


def prepare(data: Path) -> None:
    from services.catalog.schema import MEDIA, SCHEMA
    from services.common.config import load_config
    from services.common.store.sqlite import SqliteStore
    from services.encoder.media.pipeline import encode_title
    from services.encoder.media.samples import sample_clip

    encode_title(sample_clip("bigbuckbunny.mp4"), TITLE, data / "origin", preset="ultrafast")

    async def mark() -> None:
        store = SqliteStore(load_config(data_dir=data).sqlite_path)
        await store.migrate(SCHEMA)
        await store.insert(MEDIA, {"media_id": TITLE, "ready": True, "media_path": TITLE, "heights": [720]})
        await store.close()

    asyncio.run(mark())


def start_platform(data: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ready = data.parent / "ready.json"
    env = {**os.environ, "MARQUEE_LOGGING__LEVEL": "WARNING", "MARQUEE_SERVICES__CATALOG__DEMO__ENABLED": "false"}
    cmd = [sys.executable, "-m", "services.platform.cli", "--data-dir", str(data), "up", "--ephemeral-ports"]
    cmd += ["--ready-file", str(ready), "--only", "catalog", "steering", "edge", "playback"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 90
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the platform did not start")
        time.sleep(0.1)
    os.sched_setaffinity(proc.pid, {0})
    for task in os.listdir(f"/proc/{proc.pid}/task"):
        os.sched_setaffinity(int(task), {0})
    os.sched_setaffinity(0, {1})
    return proc, json.loads(ready.read_text())


def ts(micros: int) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(micros)
    return t


async def run(
    endpoints: dict[str, Any], data: Path, pid: int, *, clients: int, seconds: float, starts: int, rounds_: int
) -> None:
    from services.common.auth import AccessTokens
    from services.common.config import load_config
    from services.platform.admin import admin_metadata
    from services.platform.runtime import local_config

    platform = local_config(load_config(data_dir=data))
    tokens = AccessTokens(platform.auth)
    async with (
        grpc.aio.insecure_channel(endpoints["catalog"][0]["address"]) as cc,
        grpc.aio.insecure_channel(endpoints["playback"][0]["address"]) as pc,
    ):
        title = catalog_pb2.Title(
            display_name="Bench", type=catalog_pb2.TITLE_TYPE_MOVIE, maturity_rating=common_pb2.MATURITY_RATING_PG
        )
        await catalog_pb2_grpc.CatalogServiceStub(cc).CreateTitle(
            catalog_pb2.CreateTitleRequest(title=title, title_id=TITLE), metadata=admin_metadata(platform)
        )
        stub = playback_pb2_grpc.PlaybackServiceStub(pc)
        start_latency: list[float] = []
        sessions: list[tuple[str, Any]] = []
        for i in range(starts):
            md = (("authorization", f"Bearer {tokens.issue(f'acct-{i}', profile_id='p', plan='premium').token}"),)
            request = playback_pb2.StartPlaybackRequest(
                title=f"titles/{TITLE}", profile=f"accounts/acct-{i}/profiles/p"
            )
            t = time.perf_counter()
            reply = await stub.StartPlayback(request, metadata=md)
            start_latency.append(time.perf_counter() - t)
            sessions.append((reply.session.name, md))

        async def update(k: int, n: int) -> Any:
            name, md = sessions[k % len(sessions)]
            position = duration_pb2.Duration()
            position.FromMilliseconds(n % 5000)
            request = playback_pb2.UpdatePositionRequest(
                session=name, position=position, event_time=ts(1_700_000_000_000_000 + k * 10**9 + n)
            )
            return await stub.UpdatePosition(request, metadata=md)

        rounds = Rounds()
        for _ in range(rounds_):
            rounds.start(await reference(clients, seconds))
            rounds.add(await platform_floor(clients, seconds))
            rounds.add(await closed_loop("UpdatePosition", update, clients, seconds, [pid]))
    print(
        f"server on one core, {clients} clients; medians of {rounds.count} rounds, each ratio to its round's reference"
    )
    for r in rounds.rows():
        print(
            f"{r.label}: {r.rate:,.0f} calls/s, {r.per_cpu:,.0f} per server CPU-second, p50 {r.p50 * 1e3:.2f} ms,"
            f" p99 {r.p99 * 1e3:.2f} ms: {r.ratio:.2f}x the reference [{r.ratio_low:.2f}-{r.ratio_high:.2f}]"
        )
    print(
        "(the echo behind the platform's server, its interceptor and token check, is the most UpdatePosition can reach)"
    )
    sq = statistics.quantiles(start_latency, n=100)
    print(f"StartPlayback ({starts} sessions, one at a time): p50 {sq[49] * 1e3:.2f} ms, p99 {sq[98] * 1e3:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each with its own reference (medians shown)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="marquee-bench-playback-"))
    data = tmp / "data"
    try:
        prepare(data)
        proc, endpoints = start_platform(data)
        try:
            asyncio.run(
                run(
                    endpoints,
                    data,
                    proc.pid,
                    clients=args.clients,
                    seconds=args.seconds,
                    starts=args.starts,
                    rounds_=args.rounds,
                )
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
