"""RecommendationService on loopback over a trained model: the MovieLens demo catalog, the demo audience, and a
profile ("p-fan") that finished four family animations. Recommendations reads the titles from a CatalogService
running on loopback beside it (on the same store, as in ``marquee up``). Training runs once per session into a
template database that every test copies (a file copy for SQLite). On Cassandra it is copied once per session
(``marquee copy``'s code), and each test's store puts back, when the test ends, what the test changed."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from marquee.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2, recommendations_pb2_grpc
from services.catalog.config import CatalogConfig
from services.catalog.importer import import_demo_catalog
from services.catalog.schema import SCHEMA as CATALOG_SCHEMA
from services.catalog.server import CatalogService
from services.catalog.server import create_server as create_catalog
from services.common.bus.memory import InMemoryBus
from services.common.bus.port import EventBus
from services.common.config import GeoConfig, ServerConfig
from services.common.deps import Dependencies
from services.common.geo import Geo
from services.common.ids import now_micros
from services.common.movielens import load
from services.common.paging import PageTokens
from services.common.ratelimit import InMemoryRateLimiter
from services.common.store.cassandra_node import CassandraNode
from services.common.store.port import Store
from services.common.store.sqlite import SqliteStore
from services.recommendations.config import RecommendationsConfig, TrainingConfig
from services.recommendations.schema import SCHEMA
from services.recommendations.server import Models, create_server
from services.recommendations.signals import Signals
from services.recommendations.titles import CatalogTitles
from services.recommendations.training import catalog_items, train
from tests.catalog.conftest import ADMIN, AUTH, MEDIA_IDS, TOKENS, bearer
from tests.cql import Template, copy_template

FAN = "p-fan"
WATCHED = ("Toy Story", "Aladdin", "The Lion King", "Beauty and the Beast")
TRAINING = TrainingConfig(seed=7, lightfm_epochs=(10,), at_start=False, interval=0)


def token(profile: str, maturity: int = common_pb2.MATURITY_RATING_ADULT, account: str = "acct-1") -> Any:
    return bearer(TOKENS.issue(account, profile_id=profile, max_maturity=maturity).token)


def parent(profile: str, account: str = "acct-1") -> str:
    return f"accounts/{account}/profiles/{profile}"


def deps_of(store: Store, bus: EventBus, **kw: Any) -> Dependencies:
    return Dependencies(store, bus, InMemoryRateLimiter(), AUTH, TOKENS, PageTokens(b"recs-pages"), **kw)


async def start_catalog(store: Store, bus: EventBus) -> CatalogService:
    """CatalogService on a free loopback port over ``store`` (the demo catalog must be imported already)."""
    config = CatalogConfig(server=ServerConfig(host="127.0.0.1", port=0, drain_delay=0, grace_period=1))
    catalog = await create_catalog(config, deps_of(store, bus))
    await catalog.start()
    return catalog


async def title_ids(titles: CatalogTitles, names: tuple[str, ...]) -> dict[str, str]:
    items, _ = await catalog_items(titles)
    found: dict[str, str] = {}
    for it in items:
        if it.name in names and it.name not in found:
            found[it.name] = it.id
    assert set(found) == set(names), f"demo titles missing: {set(names) - set(found)}"
    return found


async def _build(path: Path) -> None:
    store = SqliteStore(path)
    bus = InMemoryBus()
    await store.migrate(CATALOG_SCHEMA)
    await store.migrate(SCHEMA)
    await import_demo_catalog(store, MEDIA_IDS, load())
    catalog = await start_catalog(store, bus)
    titles = CatalogTitles.connect(f"127.0.0.1:{catalog.grpc_port}", TOKENS)
    try:
        ids = await title_ids(titles, WATCHED)
        signals = Signals(store)
        start = now_micros() - 3_600_000_000
        for n, name in enumerate(WATCHED):
            await signals.record(FAN, ids[name], positive=True, kind="finished", time=start + n, region="GB")
        assert await train(store, titles, TRAINING) is not None
    finally:
        await titles.close()
        await catalog.stop()
        await bus.close()
        await store.close()


@pytest.fixture(scope="session")
def trained_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recs") / "template.db"
    asyncio.run(_build(path))
    return path


@dataclass
class Recs:
    stub: Any
    catalog: Any  # CatalogServiceStub; calls carry an admin token
    titles: CatalogTitles
    store: Store
    bus: InMemoryBus
    models: Models

    async def title(self, name: str) -> str:
        return (await title_ids(self.titles, (name,)))[name]

    async def get(self, title_id: str) -> catalog_pb2.Title:
        response = await self.catalog.GetTitle(catalog_pb2.GetTitleRequest(name=f"titles/{title_id}"), metadata=ADMIN)
        title: catalog_pb2.Title = response.title
        return title

    async def batch(self, title_ids: list[str]) -> list[catalog_pb2.Title]:
        request = catalog_pb2.BatchGetTitlesRequest(names=[f"titles/{t}" for t in title_ids])
        response = await self.catalog.BatchGetTitles(request, metadata=ADMIN)
        assert len(response.titles) == len(title_ids)
        return list(response.titles)

    async def maturity(self, title_id: str) -> int:
        return (await self.get(title_id)).maturity_rating


@pytest.fixture(scope="session")
def cql_template(trained_db: Path, cassandra: CassandraNode, tmp_path_factory: pytest.TempPathFactory) -> Template:
    """The trained template in the session's Cassandra, copied once: each test's store puts back what it changed."""
    workdir = tmp_path_factory.mktemp("recs-cql")
    copying = copy_template(cassandra, trained_db, [CATALOG_SCHEMA, SCHEMA], workdir)
    # a loop of its own, in a thread: the first test asks for this from inside its fixture's running loop
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, copying).result()


@pytest.fixture
async def recs(
    tmp_path: Path, trained_db: Path, store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[Recs]:
    if store_kind == "sqlite":
        db = tmp_path / "recs.db"
        shutil.copy(trained_db, db)
        store: Store = SqliteStore(db)
    else:
        template: Template = request.getfixturevalue("cql_template")
        store = template.open()
    bus = InMemoryBus()
    catalog = await start_catalog(store, bus)
    address = f"127.0.0.1:{catalog.grpc_port}"
    # the test calls from loopback, which this geo config places in GB (the requests' own region is a hint)
    geo = Geo(GeoConfig(loopback_region="GB"))
    deps = deps_of(store, bus, geo=geo, addresses={"catalog": address})
    config = RecommendationsConfig(server=ServerConfig(port=0, drain_delay=0, grace_period=1), training=TRAINING)
    service = await create_server(config, deps)
    await service.start()
    titles = CatalogTitles.connect(address, TOKENS)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel,
        grpc.aio.insecure_channel(address) as catalog_channel,
    ):
        yield Recs(
            recommendations_pb2_grpc.RecommendationServiceStub(channel),
            catalog_pb2_grpc.CatalogServiceStub(catalog_channel),
            titles,
            store,
            bus,
            service.models,
        )
    await titles.close()
    await service.stop()
    await catalog.stop()
    geo.close()
    await bus.close()
    await store.close()
