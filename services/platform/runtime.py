"""What the services of one all-in-one process share: config, dependencies (store, bus, limiter, keys, the deny
list of revoked access tokens)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from pydantic import SecretStr

from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.bus.port import EventBus
from services.common.bus.redis import RedisBus
from services.common.config import PlatformConfig, ServerConfig
from services.common.denylist import DenyList, InMemoryDenyList, follow_revocations
from services.common.denylist_redis import RedisDenyList
from services.common.deps import Dependencies
from services.common.geo import Geo
from services.common.ids import new_id
from services.common.paging import PageTokens
from services.common.plans import Plans
from services.common.ratelimit import InMemoryRateLimiter, RateLimiter, RedisRateLimiter
from services.common.redisclient import redis_client
from services.common.store.factory import open_store
from services.common.store.port import Store
from services.common.tasks import cancel_all

log = logging.getLogger("marquee.platform")


@dataclass
class Runtime:
    """Shared resources handed to every plugin's ``start``.

    ``addresses`` maps a started service's name to its gRPC address, so later services find earlier ones."""

    config: PlatformConfig
    deps: Dependencies
    ephemeral_ports: bool = False
    addresses: dict[str, str] = field(default_factory=dict)
    http_urls: dict[str, str] = field(default_factory=dict)  # a started service's first HTTP endpoint (its site)
    redis: aioredis.Redis | None = None  # the client the Redis adapters share, when any is configured
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # the runtime's own background work

    def server_config(self, service: ServerConfig, default_port: int) -> ServerConfig:
        """The service's server section with the platform's port policy applied."""
        if self.ephemeral_ports:
            return service.model_copy(update={"port": 0})
        if service.port == 0 and default_port:
            return service.model_copy(update={"port": default_port})
        return service

    def follow_revocations(self) -> None:
        """With a Redis bus (replicas share it) and a deny list of this process's own (``[state] kind = "memory"``),
        apply every replica's access-token revocations to the list too, from the start of the retained topic. With
        the in-process bus the accounts service of this process is the only source, and it writes the list itself;
        with ``[state] kind = "redis"`` the list is shared and every accounts replica writes it directly."""
        if self.config.bus.kind != "redis" or self.config.state.kind == "redis":
            return
        follower = follow_revocations(self.deps.bus, self.deps.denylist, f"denylist-{new_id()}", from_beginning=True)
        self.tasks.append(asyncio.create_task(follower, name="follow-revocations"))

    async def close(self) -> None:
        await cancel_all(self.tasks)
        await self.deps.bus.close()
        await self.deps.store.close()
        self.deps.geo.close()
        if self.redis is not None:
            await self.redis.aclose()


def _local_key(data_dir: Path, name: str = "auth-signing-key") -> str:
    """One of the all-in-one's signing keys, made once and kept (0600) so sessions survive a restart. Processes
    starting together on one data directory (`marquee serve` of several services) agree on one key: each writes
    a candidate whole, and the first to link it into place wins."""
    path = data_dir / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    candidate = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass  # another process's key is in place: use it
    finally:
        candidate.unlink()
    return path.read_text().strip()


def local_config(config: PlatformConfig) -> PlatformConfig:
    """The config with the all-in-one's generated signing keys (access tokens, signed URLs, edge fills) and master
    key (content keys of protected titles) where none are set."""
    if not config.auth.keys:
        auth = config.auth.model_copy(
            update={"keys": {"local": SecretStr(_local_key(config.data_dir))}, "signing_kid": "local"}
        )
        config = config.model_copy(update={"auth": auth})
    if not config.url_signing.keys:
        key = SecretStr(_local_key(config.data_dir, "url-signing-key"))
        url_signing = config.url_signing.model_copy(update={"keys": {"local": key}, "signing_kid": "local"})
        config = config.model_copy(update={"url_signing": url_signing})
    if not config.edge_fill.keys:
        key = SecretStr(_local_key(config.data_dir, "edge-fill-key"))
        edge_fill = config.edge_fill.model_copy(update={"keys": {"local": key}, "signing_kid": "local"})
        config = config.model_copy(update={"edge_fill": edge_fill})
    if not config.content_keys.keys:
        key = SecretStr(_local_key(config.data_dir, "content-master-key"))
        content_keys = config.content_keys.model_copy(update={"keys": {"local": key}, "wrapping_kid": "local"})
        config = config.model_copy(update={"content_keys": content_keys})
    return config


def _signing_key(config: PlatformConfig) -> bytes:
    return config.auth.keys[config.auth.signing_kid].get_secret_value().encode()


def platform_store(config: PlatformConfig) -> Store:
    """The configured store, for a command-line tool (the same paging secret as the running services)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(config, _signing_key(local_config(config)))


def open_runtime(config: PlatformConfig, *, ephemeral_ports: bool = False) -> Runtime:
    """Open the configured adapters: the store (SQLite under ``config.data_dir``, created if missing, or a CQL
    cluster, connected on first use), the bus, the rate limiter and the deny list (in memory, or on Redis)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config = local_config(config)
    auth = config.auth
    signing = _signing_key(config)
    kinds = (config.bus.kind, config.limits.kind, config.state.kind)
    redis = redis_client(config.redis) if "redis" in kinds else None
    bus: EventBus = InMemoryBus(max_len=config.bus.max_len)
    if config.bus.kind == "redis" and redis is not None:
        bus = RedisBus(
            redis,
            prefix=f"{config.redis.key_prefix}bus:",
            max_len=config.bus.max_len,
            max_attempts=config.bus.max_attempts,
        )
    limiter: RateLimiter = InMemoryRateLimiter()
    if config.limits.kind == "redis" and redis is not None:
        limiter = RedisRateLimiter(redis, prefix=f"{config.redis.key_prefix}rl:")
    if config.state.kind == "redis" and config.limits.kind == "memory":
        log.warning(
            "[state] is shared on Redis but [limits] kind is memory: each replica counts its own rate limits and"
            ' password attempts (set [limits] kind = "redis" for one budget across replicas)'
        )
    denylist: DenyList = InMemoryDenyList()
    if config.state.kind == "redis" and redis is not None:
        denylist = RedisDenyList(redis, prefix=f"{config.redis.key_prefix}deny:")
    addresses = dict(config.addresses)  # the services marquee up starts are added as they start
    deps = Dependencies(
        store=open_store(config, signing),
        bus=bus,
        rate_limiter=limiter,
        auth=auth,
        tokens=AccessTokens(auth),
        page_tokens=PageTokens(signing),
        denylist=denylist,
        url_signing=config.url_signing,
        content_keys=config.content_keys,
        geo=Geo(config.geo),
        plans=Plans(config.plans),
        data_dir=config.data_dir,
        addresses=addresses,
        redis_prefix=config.redis.key_prefix,
        state_redis=redis if config.state.kind == "redis" else None,
        redis_server=config.redis if redis is not None else None,
    )
    return Runtime(config=config, deps=deps, ephemeral_ports=ephemeral_ports, addresses=addresses, redis=redis)
