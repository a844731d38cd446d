"""GetRecommendations latency: top picks for profiles with a precomputed list, with and without views since the
last training (the realtime rerank: similar titles to the latest views through the Rust top-k, rescoring,
diversity, trending injection), over gRPC on loopback with the service in its own process.

The model is trained on the demo catalog (1,682 titles, read through CatalogService as the service does) with the
MovieLens audience and 300 profiles replaying MovieLens users' first 30 ratings; 100 of them then watch three more
titles after training. The catalog runs in a process of its own beside the service (it is called only when a
title is announced, which the benchmark does not do).
Run: ./dev bench recommendations
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from marquee.v1 import common_pb2, recommendations_pb2_grpc
from marquee.v1 import recommendations_pb2 as pb

KEY = "bench-recommendations-key-0123456789abcdef"
PROFILES = 300
LATE = 100
MEDIA = ("a", "b", "c", "d")


def import_catalog(db: Path) -> None:
    """The demo catalog into ``db``, for the catalog process."""
    from services.catalog.importer import import_demo_catalog
    from services.catalog.schema import SCHEMA as CATALOG_SCHEMA
    from services.common.movielens import load
    from services.common.store.sqlite import SqliteStore

    async def run() -> None:
        store = SqliteStore(db)
        await store.migrate(CATALOG_SCHEMA)
        await import_demo_catalog(store, MEDIA, load())
        await store.close()

    asyncio.run(run())


def build(db: Path, catalog: str) -> dict[str, Any]:
    """The bench profiles' signals and one training run, on the titles of the catalog at ``catalog``."""
    from pydantic import SecretStr

    from ml.data import movielens_dataset
    from services.common.auth import AccessTokens
    from services.common.config import AuthConfig
    from services.common.ids import now_micros
    from services.common.movielens import load
    from services.common.store.sqlite import SqliteStore
    from services.recommendations.config import TrainingConfig
    from services.recommendations.schema import SCHEMA
    from services.recommendations.signals import Signals
    from services.recommendations.titles import CatalogTitles
    from services.recommendations.training import catalog_items, train

    async def run() -> dict[str, Any]:
        store = SqliteStore(db)
        await store.migrate(SCHEMA)
        data = load()
        titles = CatalogTitles.connect(catalog, AccessTokens(AuthConfig(keys={"k1": SecretStr(KEY)}, signing_kid="k1")))
        _, demo = await catalog_items(titles)
        events = movielens_dataset(data, demo).events
        by_user: dict[str, list[Any]] = {}
        for e in sorted(events, key=lambda e: (e.user, e.time, e.item)):
            by_user.setdefault(e.user, []).append(e)
        signals = Signals(store)
        base = now_micros() - 86_400_000_000
        users = sorted(by_user)[:PROFILES]
        for n, user in enumerate(users):
            for k, e in enumerate(by_user[user][:30]):
                await signals.record(f"bench-{n}", e.item, positive=True, kind="finished", time=base + k, region="US")
        outcome = await train(store, titles, TrainingConfig(lightfm_epochs=(10,), at_start=False, interval=0))
        assert outcome is not None
        await titles.close()
        for n, user in enumerate(users[:LATE]):
            for k, e in enumerate(by_user[user][30:33]):
                await signals.record(
                    f"bench-{n}", e.item, positive=True, kind="finished", time=now_micros() + k, region="US"
                )
        await store.close()
        return {"seconds": outcome.seconds, **outcome.summary}

    return asyncio.run(run())


async def load_(address: str, tokens: list[Any], profiles: list[int], *, clients: int, seconds: float) -> list[float]:
    channel = grpc.aio.insecure_channel(address)
    stub = recommendations_pb2_grpc.RecommendationServiceStub(channel)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        rng = random.Random(i)
        while time.perf_counter() < deadline:
            n = rng.choice(profiles)
            request = pb.GetRecommendationsRequest(
                parent=f"accounts/a/profiles/bench-{n}", row=pb.RECOMMENDATION_ROW_TOP_PICKS, page_size=20, region="US"
            )
            started = time.perf_counter()
            await stub.GetRecommendations(request, metadata=tokens[n])
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client(i) for i in range(clients)))
    await channel.close(None)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 4, 8])
    args = parser.parse_args()
    from pydantic import SecretStr

    from services.catalog.config import CatalogConfig
    from services.common.auth import AccessTokens
    from services.common.config import AuthConfig, ServerConfig
    from services.recommendations.config import RecommendationsConfig, TrainingConfig

    issuer = AccessTokens(AuthConfig(keys={"k1": SecretStr(KEY)}, signing_kid="k1"))
    tokens = [
        (("authorization", "Bearer " + issuer.issue("a", profile_id=f"bench-{n}",
                                                     max_maturity=common_pb2.MATURITY_RATING_ADULT).token),)
        for n in range(PROFILES)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="marquee-bench-recs-") as tmp:
        db = Path(tmp) / "recs.db"
        import_catalog(db)
        server = ServerConfig(port=0, drain_delay=0, grace_period=1, reflection=False)
        with contextlib.ExitStack() as stack:
            catalog, _ = stack.enter_context(
                service_process("services.catalog.server:create_server", CatalogConfig(server=server), db, KEY)
            )
            trained = build(db, catalog)
            print(f"trained in {trained['seconds']:.1f} s: {trained['users']} users x {trained['items']} titles, "
                  f"{trained['events']:,} events, weights {trained['weights']}")  # fmt: skip
            config = RecommendationsConfig(server=server, training=TrainingConfig(at_start=False, interval=0))
            address, _ = stack.enter_context(
                service_process(
                    "services.recommendations.server:create_server", config, db, KEY, addresses={"catalog": catalog}
                )
            )
            print("RecommendationService in its own process, gRPC over loopback, top picks, page of 20")
            print(f"{'profiles':<24} {'clients':>8} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
            cases = {"precomputed only": list(range(LATE, PROFILES)), "+ views since training": list(range(LATE))}
            for label, profiles in cases.items():
                for clients in args.clients:
                    lat = asyncio.run(load_(address, tokens, profiles, clients=clients, seconds=args.seconds))
                    qs = statistics.quantiles(lat, n=100)
                    rate = len(lat) / args.seconds
                    print(f"{label:<24} {clients:>8} {rate:>9.0f} {qs[49] * 1e3:>8.2f} {qs[98] * 1e3:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
