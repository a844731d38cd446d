"""CatalogService on loopback with the MovieLens demo catalog, and callers: an admin, an adult profile, a kids
profile (maturity limit in the token, as accounts issues it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from marquee.v1 import catalog_pb2_grpc, common_pb2
from services.catalog.config import CatalogConfig
from services.catalog.importer import import_demo_catalog
from services.catalog.schema import SCHEMA
from services.catalog.server import create_server
from services.catalog.view import CatalogView
from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.config import AuthConfig, ServerConfig
from services.common.deps import Dependencies
from services.common.movielens import MovieLens, load
from services.common.paging import PageTokens
from services.common.ratelimit import InMemoryRateLimiter
from services.common.store.port import Store
from tests.cql import open_test_store

# The tokens below are minted once, at import: a day's lifetime outlives the slowest run (the CQL variants run last)
AUTH = AuthConfig(
    keys={"k1": SecretStr("catalog-test-key-0123456789abcdef0123")}, signing_kid="k1", access_token_ttl=86400
)
TOKENS = AccessTokens(AUTH)
MEDIA_IDS = ("big-buck-bunny", "bikes", "test-pattern", "counter-pattern")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


ADMIN = bearer(TOKENS.issue("ops", roles=["admin"]).token)
ADULT = bearer(TOKENS.issue("acct-1", profile_id="p-adult", max_maturity=common_pb2.MATURITY_RATING_ADULT).token)
KIDS = bearer(TOKENS.issue("acct-1", profile_id="p-kids", max_maturity=common_pb2.MATURITY_RATING_KIDS_7).token)


def profile(n: int) -> tuple[tuple[str, str], ...]:
    return bearer(TOKENS.issue(f"acct-{n}", profile_id=f"p{n}", max_maturity=common_pb2.MATURITY_RATING_ADULT).token)


@pytest.fixture(scope="session")
def movielens() -> MovieLens:
    return load()


@dataclass
class Catalog:
    stub: Any
    view: CatalogView
    bus: InMemoryBus
    store: Store


@pytest.fixture
async def catalog(
    tmp_path: Path, movielens: MovieLens, store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[Catalog]:
    store = await open_test_store(store_kind, tmp_path, request, "catalog")
    bus = InMemoryBus()
    await store.migrate(SCHEMA)
    await import_demo_catalog(store, MEDIA_IDS, movielens)
    deps = Dependencies(store, bus, InMemoryRateLimiter(), AUTH, TOKENS, PageTokens(b"catalog-pages"))
    config = CatalogConfig(server=ServerConfig(port=0, drain_delay=0, grace_period=1))
    service = await create_server(config, deps)
    await service.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        yield Catalog(catalog_pb2_grpc.CatalogServiceStub(channel), service.view, bus, store)
    await service.stop()
    await bus.close()
    await store.close()
