"""What the services of one all-in-one process share: config, dependencies (store, bus, limiter, keys)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.config import PlatformConfig, ServerConfig
from services.common.deps import Dependencies
from services.common.paging import PageTokens
from services.common.ratelimit import InMemoryRateLimiter
from services.common.store.sqlite import SqliteStore


@dataclass
class Runtime:
    """Shared resources handed to every plugin's ``start``.

    ``addresses`` maps a started service's name to its gRPC address, so later services find earlier ones."""

    config: PlatformConfig
    deps: Dependencies
    ephemeral_ports: bool = False
    addresses: dict[str, str] = field(default_factory=dict)

    def server_config(self, service: ServerConfig, default_port: int) -> ServerConfig:
        """The service's server section with the platform's port policy applied."""
        if self.ephemeral_ports:
            return service.model_copy(update={"port": 0})
        if service.port == 0 and default_port:
            return service.model_copy(update={"port": default_port})
        return service

    async def close(self) -> None:
        await self.deps.bus.close()
        await self.deps.store.close()


def _local_key(data_dir: Path, name: str = "auth-signing-key") -> str:
    """One of the all-in-one's signing keys, made once and kept (0600) so sessions survive a restart."""
    path = data_dir / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def local_config(config: PlatformConfig) -> PlatformConfig:
    """The config with the all-in-one's generated signing keys (access tokens, signed URLs) where none are set."""
    if not config.auth.keys:
        auth = config.auth.model_copy(
            update={"keys": {"local": SecretStr(_local_key(config.data_dir))}, "signing_kid": "local"}
        )
        config = config.model_copy(update={"auth": auth})
    if not config.url_signing.keys:
        key = SecretStr(_local_key(config.data_dir, "url-signing-key"))
        url_signing = config.url_signing.model_copy(update={"keys": {"local": key}, "signing_kid": "local"})
        config = config.model_copy(update={"url_signing": url_signing})
    return config


def open_runtime(config: PlatformConfig, *, ephemeral_ports: bool = False) -> Runtime:
    """Open the embedded adapters under ``config.data_dir`` (created if missing)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config = local_config(config)
    auth = config.auth
    signing = auth.keys[auth.signing_kid].get_secret_value().encode()
    deps = Dependencies(
        store=SqliteStore(config.sqlite_path),
        bus=InMemoryBus(),
        rate_limiter=InMemoryRateLimiter(),
        auth=auth,
        tokens=AccessTokens(auth),
        page_tokens=PageTokens(signing),
    )
    return Runtime(config=config, deps=deps, ephemeral_ports=ephemeral_ports)
