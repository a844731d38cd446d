"""The store a platform's configuration selects: embedded SQLite or a CQL cluster."""

from __future__ import annotations

import hashlib

from services.common.config import PlatformConfig
from services.common.store.port import Store
from services.common.store.sqlite import SqliteStore


def open_store(config: PlatformConfig, secret: bytes) -> Store:
    """``[store] kind``'s adapter. ``secret`` (the platform's signing key) seals CQL paging states, so every
    replica of a service accepts the others'. Nothing connects until the first call."""
    if config.store.kind == "cql":
        from services.common.store.cql import CqlStore  # the driver loads only when it is used

        return CqlStore(config.store.cql, paging_secret=hashlib.sha256(b"store\0" + secret).digest())
    return SqliteStore(config.sqlite_path)
