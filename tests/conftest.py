"""Servers the whole suite shares: started once per session on loopback (only when a test asks for them),
stopped at its end: redis-server here, the Cassandra node in tests/cql.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.platform.localredis import RedisServer
from tests.cql import any_store, cassandra, cql_prefix, store_kind  # noqa: F401 - fixtures, used by name


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server (Debian's) on a free 127.0.0.1 port, for the Redis adapters' tests."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of the test's own, so tests sharing the session's server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}:"


def _uses_cql(item: pytest.Item) -> bool:
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    return "cassandra" in getattr(item, "fixturenames", ()) or "cql" in (
        params.get("store_kind"),
        params.get("any_store"),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on Cassandra run last (in their usual order): the node (a JVM of 1.5 GB that keeps compacting
    and collecting) starts only then, so the timing-sensitive tests before it (the web player's stalls, the
    edges) do not share the two cores with it."""
    items.sort(key=_uses_cql)
