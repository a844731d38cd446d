"""A service under benchmark in its own process (spawned), on SQLite or a CQL cluster, with an in-memory bus and a
fixed access token key, so that the load generator in the parent process does not share its event loop or its
GIL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def open_store(spec: str) -> Any:
    """``sqlite:PATH`` or ``cql:HOST:PORT[,HOST:PORT]/KEYSPACE_PREFIX``."""
    from services.common.config import CqlConfig
    from services.common.store.cql import CqlStore
    from services.common.store.sqlite import SqliteStore

    kind, _, rest = spec.partition(":")
    if kind == "cql":
        points, _, prefix = rest.partition("/")
        return CqlStore(CqlConfig(contact_points=points.split(","), keyspace_prefix=prefix))
    return SqliteStore(Path(rest))


def _serve(
    create: str,
    config: Any,
    store: str,
    key: str,
    ports: multiprocessing.Queue[int],
    kwargs: dict[str, Any],
    bus_url: str = "",
) -> None:
    from pydantic import SecretStr

    from services.common.auth import AccessTokens
    from services.common.bus.memory import InMemoryBus
    from services.common.config import AuthConfig
    from services.common.deps import Dependencies
    from services.common.logs import configure_logging
    from services.common.paging import PageTokens
    from services.common.ratelimit import InMemoryRateLimiter

    module, function = create.split(":")
    create_server = getattr(importlib.import_module(module), function)

    async def main() -> None:
        configure_logging("WARNING", "json")
        auth = AuthConfig(keys={"k1": SecretStr(key)}, signing_kid="k1")
        from services.common.bus.redis import RedisBus
        from services.common.config import RedisConfig
        from services.common.denylist_redis import RedisDenyList

        deps = Dependencies(
            open_store(store),
            RedisBus.from_url(bus_url, prefix="marquee:bus:") if bus_url else InMemoryBus(),
            InMemoryRateLimiter(),
            auth,
            AccessTokens(auth),
            PageTokens(b"k"),
            **kwargs,
        )
        if isinstance(deps.bus, RedisBus):  # the distributed topology: the deny list on Redis too
            denylist = RedisDenyList(deps.bus.redis, prefix="marquee:deny:")
            deps = dataclasses.replace(deps, denylist=denylist, redis_server=RedisConfig(url=bus_url))
        service = await create_server(config, deps)
        await service.start()
        ports.put(service.grpc_port)
        await asyncio.Event().wait()

    asyncio.run(main())


@contextlib.contextmanager
def service_process(
    create: str, config: Any, db: Path | str, key: str, *, bus_url: str = "", **kwargs: Any
) -> Iterator[tuple[str, int]]:
    """Runs ``create`` ("module:function", a ``create_server`` returning a Service) with ``config`` (``kwargs``:
    more fields of its Dependencies; ``bus_url``: a Redis bus at that ``redis://`` URL instead of one in memory) over
    the SQLite database ``db`` (a path, or a store spec for :func:`open_store`); yields its gRPC address and process
    id, and stops the process on exit."""
    ctx = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue[int] = ctx.Queue()
    spec = f"sqlite:{db}" if isinstance(db, Path) else db
    proc = ctx.Process(target=_serve, args=(create, config, spec, key, ports, kwargs, bus_url), daemon=True)
    proc.start()
    try:
        yield f"127.0.0.1:{ports.get(timeout=120)}", proc.pid or 0
    finally:
        proc.terminate()
        proc.join(10)
