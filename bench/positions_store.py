"""Positions on SQLite and on CQL: UpdatePosition, GetPosition and ListWatchHistory calls/s, p99 and calls per
CPU-second, side by side with a trivial grpc.aio service measured in the same run on the same machine.

Each server under test is one PlaybackService process pinned to core 0 (one process per core); the load comes from
this process on core 1, closed-loop with ``--clients`` callers. "Per core" divides the calls by the CPU seconds the
server spent, plus, on CQL, what the Cassandra node spent (a real cluster gives each node its own cores; here it
shares this machine's two, so its work is counted, not hidden). Every UpdatePosition is a real one: token check,
session lookup, the position and the history entry written with the event time as write time, the position read
back, an event; SQLite commits with synchronous=FULL, Cassandra at LOCAL_QUORUM with the commit log in batch mode.
Sessions are made directly in the store (StartPlayback is not what this measures); each profile's history holds
``--history`` entries. Target (issue 16): UpdatePosition on CQL at least 1.0x the reference per core.

The Redis write-behind rows (``positions = "redis"``, issue 17) run 1, 2 and 4 playback replicas (processes, the
clients spread over them) on a local redis-server with AOF (``--appendfsync``, everysec by default) in front of
each store, with the deny list on Redis too (the distributed topology): an UpdatePosition is the token check, the
deny list's MGET, the session lookup and one Lua script (the position and its ``playback.update`` event),
answered by playback's native ingest front (``--ingest native``, the default) or by its grpc.aio server
(``--ingest grpc``); every replica also runs a positions-writer persisting the events to the store, in the same
process, and a row's CPU is read once the writer has persisted every update of the row, so writing behind is
counted. The replicas and redis-server all share core 0 (this machine has two cores): the rows show the cost per
core, not scaling, which needs cores of their own.
Every row is measured in ``--rounds`` rounds, each with its own reference; the table shows medians, and each ratio
is the median of the rounds' ratios with their range (bench/_measure.py: this machine is noisy).
Run: ./dev bench positions_store (``--stores sqlite`` without the Cassandra node)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from _measure import Result, Rounds, closed_loop, pin, platform_floor, reference  # bench/ is on sys.path
from _service_process import open_store, service_process
from google.protobuf import duration_pb2, timestamp_pb2

from marquee.v1 import playback_pb2, playback_pb2_grpc

KEY = "bench-positions-key-0123456789abcdef0123456789"
TITLE = "bench-title"
PROFILES = 64


# -- the store under test ---------------------------------------------------------------------------------------


async def seed(spec: str, history: int) -> None:
    """Sessions and history entries, straight into the store."""
    from services.common.ids import now_micros
    from services.playback.schema import SCHEMA, SESSIONS, WATCH_HISTORY

    store = open_store(spec)
    await store.migrate(SCHEMA)
    now = now_micros()
    for i in range(PROFILES):
        await store.insert(
            SESSIONS,
            {
                "session_id": f"session-{i}",
                "account_id": f"acct-{i}",
                "profile_id": "p",
                "device_id": "",
                "title_id": TITLE,
                "media_id": TITLE,
                "runtime_ms": 7_200_000,
                "slot": 0,
                "max_height": 720,
                "region": "",
                "start_time": now,
                "expire_time": now + 86_400 * 1_000_000,
                "ended": False,
                "pathways": [],
                "steering_uri": "",
            },
        )
        rows = [
            {
                "account_id": f"acct-{i}",
                "profile_id": "p",
                "watched_at": now - (h + 1) * 1_000_000,
                "title_id": f"old-{h}",
                "session_id": f"old-{h}",
                "position_ms": 1000,
                "runtime_ms": 7_200_000,
                "event_time": now - h,
                "finished": False,
            }
            for h in range(history)
        ]
        await store.insert_many(WATCH_HISTORY, rows)
    await store.close()


async def written_behind(redis_url: str) -> None:
    """Until the positions-writer has persisted every ``playback.update`` event: an update's cost includes its
    write to the store, so a row's CPU is read only once the writer caught up."""
    import redis.asyncio as aioredis

    from services.playback.positions_redis import WRITER_GROUP

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    stream = "marquee:bus:playback.update"
    async with aioredis.Redis.from_url(redis_url) as client:
        while True:
            groups = await client.xinfo_groups(stream)
            group = next((g for g in groups if text(g["name"]) == WRITER_GROUP), None)
            if group is not None and group["pending"] == 0:
                last = text(group["last-delivered-id"])
                if not await client.xrange(stream, min=f"({last}", count=1):
                    return
            await asyncio.sleep(0.05)


def ts(micros: int) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(micros)
    return t


async def measure_store(
    label: str,
    spec: str,
    extra_pids: list[int],
    clients: int,
    seconds: float,
    history: int,
    tmp: Path,
    *,
    redis_url: str = "",
    replicas: int = 1,
    ingest: str = "native",
) -> list[Result]:
    """UpdatePosition, GetPosition and ListWatchHistory on ``replicas`` playback processes (spread over the clients);
    with ``redis_url``, positions on Redis with write-behind to the store (each replica runs a positions-writer)."""
    from pydantic import SecretStr

    from services.common.auth import AccessTokens
    from services.common.config import AuthConfig, ServerConfig, UrlSigningConfig
    from services.common.plans import Plan, Plans
    from services.playback.config import ManifestHttpConfig, PlaybackConfig

    await seed(spec, history)
    auth = AuthConfig(keys={"k1": SecretStr(KEY)}, signing_kid="k1")
    tokens = AccessTokens(auth)
    mds = [(("authorization", f"Bearer {tokens.issue(f'acct-{i}', profile_id='p').token}"),) for i in range(PROFILES)]
    config = PlaybackConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1),
        http=ManifestHttpConfig(port=0),
        origin=tmp / "origin",
        positions="redis" if redis_url else "store",
        ingest=ingest,
    )
    kwargs = {
        "addresses": {"catalog": "127.0.0.1:9", "steering": "127.0.0.1:9"},
        "plans": Plans(
            [Plan(id="bench", display_name="Bench", max_concurrent_streams=4, max_resolution_height=720, max_devices=4)]
        ),
        "url_signing": UrlSigningConfig(keys={"u": SecretStr("bench-url-signing-key")}, signing_kid="u"),
    }
    results = []
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                service_process(
                    "services.playback.server:create_server", config, spec, KEY, bus_url=redis_url, **kwargs
                )
            )
            for _ in range(replicas)
        ]
        for _, pid in servers:
            pin(pid, 0)  # every replica on the server core: calls per CPU-second is what compares
        channels = [grpc.aio.insecure_channel(address) for address, _ in servers]
        stubs = [playback_pb2_grpc.PlaybackServiceStub(c) for c in channels]
        base = 1_700_000_000_000_000

        async def update(k: int, n: int) -> Any:
            i = k % PROFILES
            position = duration_pb2.Duration()
            position.FromMilliseconds(n % 7_000_000)
            return await stubs[k % replicas].UpdatePosition(
                playback_pb2.UpdatePositionRequest(
                    session=f"playbackSessions/session-{i}", position=position, event_time=ts(base + n * 1000 + k)
                ),
                metadata=mds[i],
            )

        async def get(k: int, n: int) -> Any:
            i = k % PROFILES
            return await stubs[k % replicas].GetPosition(
                playback_pb2.GetPositionRequest(profile=f"accounts/acct-{i}/profiles/p", title=f"titles/{TITLE}"),
                metadata=mds[i],
            )

        async def history_page(k: int, n: int) -> Any:
            i = k % PROFILES
            return await stubs[k % replicas].ListWatchHistory(
                playback_pb2.ListWatchHistoryRequest(parent=f"accounts/acct-{i}/profiles/p", page_size=20),
                metadata=mds[i],
            )

        pids = [pid for _, pid in servers] + extra_pids
        settle = (lambda: written_behind(redis_url)) if redis_url else None
        for name, call in (("UpdatePosition", update), ("GetPosition", get), ("ListWatchHistory", history_page)):
            results.append(
                await closed_loop(f"{name} on {label}", call, clients, seconds, pids, servers=replicas, settle=settle)
            )
        for channel in channels:
            await channel.close(None)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--history", type=int, default=200, help="history entries per profile")
    parser.add_argument("--heap-mb", type=int, default=1024, help="the Cassandra node's heap")
    parser.add_argument(
        "--stores", default="sqlite,cql", help="comma-separated: sqlite, cql (needs a Cassandra node, started here)"
    )
    parser.add_argument(
        "--redis-replicas",
        default="1,2,4",
        help="playback replicas (processes) on Redis write-behind + each store, comma-separated ('' for none)",
    )
    parser.add_argument(
        "--ingest",
        default="native",
        help="who answers on the Redis rows, comma-separated: native (the front), grpc (the grpc.aio server alone)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each with its own reference (medians shown)")
    parser.add_argument("--appendfsync", choices=["always", "everysec"], default="everysec", help="the Redis AOF's")
    args = parser.parse_args()
    from services.common.store.cassandra_node import CassandraNode
    from services.platform.localredis import RedisServer

    stores = [s for s in args.stores.split(",") if s]
    rounds = Rounds()
    replica_counts = [int(n) for n in args.redis_replicas.split(",") if n]
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="marquee-bench-positions-") as tmp_dir:
        tmp = Path(tmp_dir)
        node = CassandraNode(tmp / "cassandra", heap_mb=args.heap_mb)  # commit log in batch mode: durable acks
        if "cql" in stores:
            print("starting a Cassandra node ...", flush=True)
            node.start()
        redis = RedisServer(tmp / "redis", appendonly=True, appendfsync=args.appendfsync)
        if replica_counts:
            redis.start()
            assert redis.pid is not None
            pin(redis.pid, 0)  # on the server core, counted with the servers
        try:
            for _ in range(args.rounds):
                rounds.start(asyncio.run(reference(args.clients, args.seconds)))
                rounds.add(asyncio.run(platform_floor(args.clients, args.seconds)))
                for kind in stores:
                    if kind == "cql":
                        assert node.process is not None
                        spec, label, extra = f"cql:{node.contact_point}/bench_", "CQL", [node.process.pid]
                    else:
                        spec, label, extra = f"sqlite:{tmp / 'bench.db'}", "SQLite", []
                    measured = asyncio.run(
                        measure_store(label, spec, extra, args.clients, args.seconds, args.history, tmp)
                    )
                    for n, ingest in itertools.product(replica_counts, [i for i in args.ingest.split(",") if i]):
                        assert redis.pid is not None
                        measured += asyncio.run(
                            measure_store(
                                f"Redis+{label} x{n} {ingest}",
                                spec,
                                [*extra, redis.pid],
                                args.clients,
                                args.seconds,
                                args.history,
                                tmp,
                                redis_url=redis.url,
                                replicas=n,
                                ingest=ingest,
                            )
                        )
                    for result in measured:
                        rounds.add(result)
        finally:
            redis.stop()
            if "cql" in stores:
                node.stop()
    print(
        f"\n{args.clients} closed-loop clients on core 1, each server process pinned to core 0, {args.seconds:.0f} s"
        f" a row; medians of {rounds.count} rounds, each ratio to its own round's reference (its range in brackets)"
    )
    header = ("calls/s", "p50 ms", "p99 ms", "calls/CPU-s", "vs ref", "range", "server only")
    print(f"{'':<40}" + "".join(f"{h:>12}" for h in header))
    for r in rounds.rows():
        print(
            f"{r.label:<40}{r.rate:>12,.0f}{r.p50 * 1e3:>12.2f}{r.p99 * 1e3:>12.2f}{r.per_cpu:>12,.0f}"
            f"{r.ratio:>11.2f}x{f'[{r.ratio_low:.2f}-{r.ratio_high:.2f}]':>12}{r.server_ratio:>11.2f}x"
        )
    print("calls/CPU-s: per CPU-second of the server processes plus, on CQL, the Cassandra node and, on Redis, the")
    print("redis-server; 'server only' leaves the databases out (on a cluster they have cores of their own). The")
    print("reference is one trivial grpc.aio process; the echo behind the platform's server (its interceptor and token")
    print("check) is the most any authenticated RPC can reach. Replicas share core 0 with redis-server (2 cores here).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
