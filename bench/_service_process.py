"""A service under benchmark in its own process (spawned), on SQLite, with an in-memory bus and a fixed access
token key, so that the load generator in the parent process does not share its event loop or its GIL."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _serve(create: str, config: Any, db: str, key: str, ports: multiprocessing.Queue[int]) -> None:
    from pydantic import SecretStr

    from services.common.auth import AccessTokens
    from services.common.bus.memory import InMemoryBus
    from services.common.config import AuthConfig
    from services.common.deps import Dependencies
    from services.common.logs import configure_logging
    from services.common.paging import PageTokens
    from services.common.ratelimit import InMemoryRateLimiter
    from services.common.store.sqlite import SqliteStore

    module, function = create.split(":")
    create_server = getattr(importlib.import_module(module), function)

    async def main() -> None:
        configure_logging("WARNING", "json")
        auth = AuthConfig(keys={"k1": SecretStr(key)}, signing_kid="k1")
        deps = Dependencies(
            SqliteStore(Path(db)), InMemoryBus(), InMemoryRateLimiter(), auth, AccessTokens(auth), PageTokens(b"k")
        )
        server, port, *_ = await create_server(config, deps)
        await server.start()
        ports.put(port)
        await asyncio.Event().wait()

    asyncio.run(main())


@contextlib.contextmanager
def service_process(create: str, config: Any, db: Path, key: str) -> Iterator[str]:
    """Runs ``create`` ("module:function", returning ``(server, port, ...)``) with ``config`` over the SQLite
    database ``db``; yields its gRPC address and stops the process on exit."""
    ctx = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue[int] = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(create, config, str(db), key, ports), daemon=True)
    proc.start()
    try:
        yield f"127.0.0.1:{ports.get(timeout=120)}"
    finally:
        proc.terminate()
        proc.join(10)
