"""Catalog search and browse latency over gRPC on a 10k-title catalog under concurrent clients.

The catalog is the 1,682 MovieLens-100k titles plus synthetic ones (titles made of words from the MovieLens
titles, with their genres, cast and years) up to ``--titles``. CatalogService runs in its own process; the load
comes from this one over loopback. Search queries are a mix of whole titles, typos, joined words and prefixes as
typed; browse is ListTitles with a genre filter, by popularity, 20 per page. Target: search p99 < 10 ms.
Run: ./dev bench catalog_search
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from _service_process import service_process  # bench/ is on sys.path when a script here runs

from marquee.v1 import catalog_pb2 as pb
from marquee.v1 import catalog_pb2_grpc

KEY = "catalog-bench-key-0123456789abcdef0123456789"
QUERIES = [
    "godfathr", "star w", "starwars", "toy stor", "pulp fictoin", "shawshank", "casablanka", "jurasic park",
    "forest gump", "aladin", "apolo 13", "backtothefuture", "blade runner", "diehard", "brave heart",
    "schindlers list", "mission impossible", "titanic 1997", "12 monkeys", "silence lambs", "lion king",
    "wizard of oz", "monty pyth", "citizen k", "fargo", "e.t.", "alien", "batman", "the", "love",
]  # fmt: skip


def build_catalog(db: Path, titles: int) -> int:
    """The MovieLens demo titles plus synthetic ones, written to the store; returns the catalog size."""

    async def run() -> int:
        from services.catalog.demo import demo_titles
        from services.catalog.schema import SCHEMA, TITLES, TITLES_BY_BUCKET, bucket_of
        from services.common.movielens import load
        from services.common.store.sqlite import SqliteStore

        store = SqliteStore(db)
        await store.migrate(SCHEMA)
        rows = demo_titles(load(), ("a", "b", "c", "d"), int(time.time() * 1e6))
        rng = random.Random(7)
        words = [w for r in rows for w in r["display_name"].split() if w.isalpha() and len(w) > 3]
        for i in range(max(0, titles - len(rows))):
            base = dict(rng.choice(rows[:1682]))
            name = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
            base |= {"title_id": f"synthetic-{i}", "display_name": name, "original_title": "",
                     "release_year": rng.randint(1930, 2024), "popularity": float(rng.randint(0, 300)),
                     "source": "bench"}  # fmt: skip
            rows.append(base)
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            await store.insert_many(TITLES, chunk)
            await store.insert_many(
                TITLES_BY_BUCKET, [{"bucket": bucket_of(r["title_id"]), "title_id": r["title_id"]} for r in chunk]
            )
        await store.close()
        return len(rows)

    return asyncio.run(run())


async def load(address: str, md: Any, *, clients: int, seconds: float, kind: str) -> list[float]:
    channel = grpc.aio.insecure_channel(address)
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    genres = ["Comedy", "Drama", "Action", "Thriller", "Romance", "Sci-Fi", "Horror", "Children's"]

    async def client(i: int) -> None:
        rng = random.Random(i)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if kind == "search":
                await stub.SearchTitles(pb.SearchTitlesRequest(query=rng.choice(QUERIES), page_size=20), metadata=md)
            else:
                f = pb.TitleFilter(genre=rng.choice(genres))
                await stub.ListTitles(pb.ListTitlesRequest(filter=f, page_size=20), metadata=md)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client(i) for i in range(clients)))
    await channel.close(None)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--titles", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 4, 8, 16])
    args = parser.parse_args()
    from pydantic import SecretStr

    from services.catalog.config import CatalogConfig, DemoCatalogConfig
    from services.common.auth import AccessTokens
    from services.common.config import AuthConfig, ServerConfig

    token = AccessTokens(AuthConfig(keys={"k1": SecretStr(KEY)}, signing_kid="k1")).issue("bench", profile_id="p").token
    md = (("authorization", f"Bearer {token}"),)
    with tempfile.TemporaryDirectory(prefix="marquee-bench-catalog-") as tmp:
        db = Path(tmp) / "catalog.db"
        size = build_catalog(db, args.titles)
        config = CatalogConfig(
            server=ServerConfig(port=0, drain_delay=0, grace_period=1, reflection=False),
            demo=DemoCatalogConfig(enabled=False),
        )
        with service_process("services.catalog.server:create_server", config, db, KEY) as (address, _):
            print(f"catalog: {size:,} titles; CatalogService in its own process, gRPC over loopback")
            print(f"{'call':<8} {'clients':>8} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
            for kind in ("search", "browse"):
                for clients in args.clients:
                    lat = asyncio.run(load(address, md, clients=clients, seconds=args.seconds, kind=kind))
                    qs = statistics.quantiles(lat, n=100)
                    rate = len(lat) / args.seconds
                    print(f"{kind:<8} {clients:>8} {rate:>9.0f} {qs[49] * 1e3:>8.2f} {qs[98] * 1e3:>8.2f}")
            print("target: search p99 < 10 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
