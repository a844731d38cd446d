"""Platform configuration: one TOML file plus environment variables, validated by pydantic.

Precedence (highest first): explicit overrides passed by code, environment variables, the TOML file, the
defaults written here. Environment variables use the prefix ``MARQUEE_`` and ``__`` between levels, e.g.
``MARQUEE_AUTH__ACCESS_TOKEN_TTL=600`` or ``MARQUEE_SERVICES__ACCOUNTS__MAX_PROFILES=4``. The file is named by
``MARQUEE_CONFIG`` or passed explicitly. Every field is documented in docs/configuration.md.

Each service owns a typed section under ``[services.<name>]`` and validates it itself
(:meth:`PlatformConfig.service`), so adding a service never edits this module.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from services.common.plans import DEFAULT_PLANS, Plan, Plans
from services.common.targets import is_address

ENV_PREFIX = "MARQUEE_"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_MASTER_KID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
CONFIG_ENV = "MARQUEE_CONFIG"

T = TypeVar("T", bound=BaseModel)


class ConfigError(Exception):
    """The configuration is invalid; the message names every bad field."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    """A gRPC server's listener and limits."""

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    grace_period: float = Field(10.0, ge=0, description="seconds in-flight RPCs get to finish on shutdown")
    drain_delay: float = Field(1.0, ge=0, description="seconds health reports NOT_SERVING before the listener closes")
    max_receive_message_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_send_message_bytes: int = Field(16 * 1024 * 1024, gt=0)
    max_concurrent_rpcs: int | None = Field(None, gt=0)
    reflection: bool = True


class AuthConfig(Section):
    """JWT access tokens and refresh tokens. ``keys`` maps key id -> HMAC secret (at least 32 bytes)."""

    issuer: str = "marquee"
    audience: str = "marquee"
    keys: dict[str, SecretStr] = Field(default_factory=dict)
    signing_kid: str = ""
    access_token_ttl: int = Field(900, gt=0, le=86400, description="seconds")
    refresh_token_ttl: int = Field(30 * 86400, gt=0, description="seconds")
    leeway: int = Field(5, ge=0, le=300, description="clock skew tolerated when checking expiry, seconds")

    @model_validator(mode="after")
    def _check_keys(self) -> AuthConfig:
        for kid, secret in self.keys.items():
            if len(secret.get_secret_value().encode()) < 32:
                raise ValueError(f"auth.keys.{kid}: secret must be at least 32 bytes")
        if self.keys and self.signing_kid not in self.keys:
            raise ValueError(f"auth.signing_kid {self.signing_kid!r} is not one of auth.keys")
        return self


class SigningKeysConfig(Section):
    """HMAC keys by id (at least 16 bytes each) and the id new tokens are signed with; several keys allow
    rotation: verifiers accept every key listed, signers use ``signing_kid``."""

    keys: dict[str, SecretStr] = Field(default_factory=dict)
    signing_kid: str = ""

    @model_validator(mode="after")
    def _check_keys(self) -> SigningKeysConfig:
        for kid, secret in self.keys.items():
            if len(secret.get_secret_value().encode()) < 16:
                raise ValueError(f"keys.{kid}: secret must be at least 16 bytes")
        if self.keys and self.signing_kid not in self.keys:
            raise ValueError(f"signing_kid {self.signing_kid!r} is not one of keys")
        return self


class UrlSigningConfig(SigningKeysConfig):
    """Signed URL tokens for media (manifests, segments, steering): playback signs, edges, the shield (when
    players may use it), steering and the manifest endpoint verify."""


class EdgeFillConfig(SigningKeysConfig):
    """Fill credentials between edges and their shield: an edge signs one per upstream request, the shield
    verifies it. Only edges and shields hold these keys (never playback, never a player)."""


class ContentKeysConfig(Section):
    """Master keys that wrap the content keys of protected titles (envelope encryption, docs/drm.md). ``keys``
    maps master key id -> secret (at least 32 bytes; the AES-256 key-encryption key is derived from it with
    HKDF-SHA256); ``wrapping_kid`` wraps new content keys, every key listed unwraps. Rotation: add a key, make it
    ``wrapping_kid``, run ``marquee keys rewrap``, then remove the old one."""

    keys: dict[str, SecretStr] = Field(default_factory=dict)
    wrapping_kid: str = ""

    @model_validator(mode="after")
    def _check_keys(self) -> ContentKeysConfig:
        for kid, secret in self.keys.items():
            if not _MASTER_KID.match(kid):
                raise ValueError(f"content_keys.keys: {kid!r} is not a key id (letters, digits, '.', '_', '-')")
            if len(secret.get_secret_value().encode()) < 32:
                raise ValueError(f"content_keys.keys.{kid}: secret must be at least 32 bytes")
        if self.keys and self.wrapping_kid not in self.keys:
            raise ValueError(f"content_keys.wrapping_kid {self.wrapping_kid!r} is not one of content_keys.keys")
        return self


REGION_PATTERN = r"^([A-Z]{2})?$"
LOOPBACK = ("127.0.0.0/8", "::1/128")


class GeoConfig(Section):
    """How client addresses map to regions, and whose ``x-forwarded-for`` is believed (services/common/geo.py)."""

    trusted_proxies: tuple[str, ...] = Field(
        LOOPBACK,
        description="networks of the gateways (and proxies) whose x-forwarded-for is believed; default loopback,"
        " where the all-in-one's gateway calls from",
    )
    database: Path | None = Field(None, description="GeoIP database (MaxMind DB format, e.g. GeoLite2-Country)")
    networks: dict[str, list[str]] = Field(
        default_factory=dict, description="region -> networks (CIDR): the fallback table, longest prefix wins"
    )
    loopback_region: str = Field("US", pattern=REGION_PATTERN, description="the region of loopback clients")
    default_region: str = Field("", pattern=REGION_PATTERN, description="the region when nothing matched")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            ipaddress.ip_network(text, strict=False)  # ValueError names the bad network
        return value

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for region, nets in value.items():
            if len(region) != 2 or not region.isalpha() or not region.isupper():
                raise ValueError(f"networks: {region!r} is not an ISO 3166-1 alpha-2 code")
            for text in nets:
                ipaddress.ip_network(text, strict=False)
        return value


class CqlTlsConfig(Section):
    """TLS to the CQL nodes (client-to-node encryption)."""

    enabled: bool = False
    ca_file: Path | None = Field(None, description="PEM bundle that signs the nodes' certificates; default: system")
    cert_file: Path | None = Field(None, description="client certificate (PEM), when the cluster asks for one")
    key_file: Path | None = Field(None, description="the client certificate's key (PEM)")
    verify_hostname: bool = True


_CONSISTENCY = Literal["ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"]


class CqlConfig(Section):
    """A ScyllaDB or Apache Cassandra cluster (``[store] kind = "cql"``). Each service's schema is a keyspace
    named ``{keyspace_prefix}{service keyspace}`` (``marquee_accounts``, ``marquee_playback``, ...)."""

    contact_points: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:9042"], min_length=1, description="HOST[:PORT] (9042 by default)"
    )
    local_dc: str = Field("datacenter1", min_length=1, description="the data center whose nodes serve requests")
    keyspace_prefix: str = Field("marquee_", pattern=r"^[a-z][a-z0-9_]{0,15}$")
    replication_factor: int = Field(1, ge=1, le=9, description="SimpleStrategy's factor (when no datacenters)")
    datacenters: dict[str, int] = Field(
        default_factory=dict, description="NetworkTopologyStrategy: replicas per DC, e.g. {dc1 = 3, dc2 = 3}"
    )
    keyspace_options: str = Field(
        "", description="appended to CREATE KEYSPACE, e.g. \"tablets = {'enabled': false}\" on ScyllaDB"
    )
    consistency: _CONSISTENCY = "LOCAL_QUORUM"
    serial_consistency: Literal["LOCAL_SERIAL", "SERIAL"] = "LOCAL_SERIAL"
    username: str = ""
    password: SecretStr = SecretStr("")
    tls: CqlTlsConfig = CqlTlsConfig()
    protocol_version: Literal[4, 5] = Field(4, description="4: what ScyllaDB speaks; 5 only for Cassandra 4+")
    connect_timeout: float = Field(5.0, gt=0, description="seconds")
    request_timeout: float = Field(10.0, gt=0, description="seconds per request (all its retries included)")
    speculative_executions: int = Field(
        0, ge=0, le=3, description="extra attempts of an idempotent request that has not answered in time (0: off)"
    )
    speculative_delay: float = Field(0.1, gt=0, description="seconds before a speculative attempt")
    schema_agreement_wait: float = Field(30.0, gt=0, description="seconds a schema change waits for every node")

    @model_validator(mode="after")
    def _check(self) -> CqlConfig:
        for point in self.contact_points:
            host, sep, port = point.rpartition(":")
            if sep and (not host or not port.isdigit() or not 0 < int(port) < 65536):
                raise ValueError(f"store.cql.contact_points: {point!r} is not HOST or HOST:PORT")
        for dc, factor in self.datacenters.items():
            if factor < 1:
                raise ValueError(f"store.cql.datacenters.{dc}: at least one replica")
        return self


class StoreConfig(Section):
    """Where services keep their data: ``sqlite`` (embedded, all-in-one) or ``cql`` (ScyllaDB, Cassandra)."""

    kind: Literal["sqlite", "cql"] = "sqlite"
    path: Path | None = Field(None, description="SQLite file; default {data_dir}/marquee.db")
    cql: CqlConfig = CqlConfig()


class RedisConfig(Section):
    """The Redis server the distributed adapters share (bus, limits, shared state)."""

    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// or rediss:// (TLS) URL, without a password")
    password: SecretStr | None = None
    key_prefix: str = Field("marquee:", pattern=r"^[A-Za-z0-9:._-]{0,64}$")
    connect_timeout: float = Field(5.0, gt=0, description="seconds")
    ready_timeout: float = Field(30.0, ge=0, description="seconds to wait for Redis at start before giving up")

    @model_validator(mode="after")
    def _check_url(self) -> RedisConfig:
        if not self.url.startswith(("redis://", "rediss://")):
            raise ValueError("redis.url must start with redis:// or rediss://")
        if "@" in self.url.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("redis.url must not carry credentials: set redis.password (a secret) instead")
        return self


class BusConfig(Section):
    """The event bus: in process (one process only) or Redis Streams (every replica shares it)."""

    kind: Literal["memory", "redis"] = "memory"
    max_len: int = Field(100_000, gt=0, description="messages kept per topic")
    max_attempts: int = Field(10, gt=0, description="deliveries of a message before it goes to the dead letters")


class LimitsConfig(Section):
    """Where rate-limit state lives: in process, or Redis (one budget across replicas)."""

    kind: Literal["memory", "redis"] = "memory"


class StateConfig(Section):
    """Where state every replica must agree on lives: in process (one process, or replicas that each follow the
    bus), or Redis (``[redis]``), shared by every replica. Today: the deny list of revoked access tokens, and
    steering's edge registry and player problem evidence."""

    kind: Literal["memory", "redis"] = "memory"


class MetricsConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class PlatformConfig(BaseSettings):
    """The whole platform's configuration (one file for the all-in-one, one per Deployment in Kubernetes)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True)

    data_dir: Path = Path("data")
    auth: AuthConfig = AuthConfig()
    url_signing: UrlSigningConfig = UrlSigningConfig()
    edge_fill: EdgeFillConfig = EdgeFillConfig()
    content_keys: ContentKeysConfig = ContentKeysConfig()
    geo: GeoConfig = GeoConfig()
    store: StoreConfig = StoreConfig()
    bus: BusConfig = BusConfig()
    limits: LimitsConfig = LimitsConfig()
    state: StateConfig = StateConfig()
    redis: RedisConfig = RedisConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    plans: tuple[Plan, ...] = Field(DEFAULT_PLANS, min_length=1, description="the subscription plans, in order")
    addresses: dict[str, str] = Field(
        default_factory=dict,
        description="service name -> gRPC address of the services this process calls (`marquee serve`); `marquee up`"
        " fills in the ones it runs",
    )
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_plans(self) -> PlatformConfig:
        Plans(self.plans)  # unique ids
        for name, address in self.addresses.items():
            if not (_NAME.match(name) and is_address(address)):
                raise ValueError(
                    f"addresses.{name}: {address!r} is not host:port, IP:port,IP:port (replicas) or dns:///name:port"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # explicit values beat the environment, which beats the TOML file (when one is configured)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    def service(self, name: str, model: type[T]) -> T:
        """Validate the ``[services.<name>]`` section into the service's own typed config."""
        try:
            return model.model_validate(self.services.get(name, {}))
        except ValidationError as exc:
            raise ConfigError(_describe(exc, prefix=f"services.{name}.")) from exc

    @property
    def sqlite_path(self) -> Path:
        return self.store.path or self.data_dir / "marquee.db"


def load_config(path: Path | str | None = None, **overrides: Any) -> PlatformConfig:
    """Load the platform config from ``path`` (or ``$MARQUEE_CONFIG``), the environment and ``overrides``."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV)
    model: type[PlatformConfig] = PlatformConfig
    if chosen:
        file = Path(chosen)
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist")
        try:
            tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc

        class _FromFile(PlatformConfig):
            model_config = SettingsConfigDict(**{**PlatformConfig.model_config, "toml_file": file})

        model = _FromFile
    try:
        return model(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def _describe(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors():
        loc = prefix + ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "invalid configuration: " + "; ".join(parts)
