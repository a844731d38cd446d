"""Platform configuration: one TOML file plus environment variables, validated by pydantic.

Precedence (highest first): explicit overrides passed by code, environment variables, the TOML file, the
defaults written here. Environment variables use the prefix ``MARQUEE_`` and ``__`` between levels, e.g.
``MARQUEE_AUTH__ACCESS_TOKEN_TTL=600`` or ``MARQUEE_SERVICES__ACCOUNTS__MAX_PROFILES=4``. The file is named by
``MARQUEE_CONFIG`` or passed explicitly. Every field is documented in docs/configuration.md.

Each service owns a typed section under ``[services.<name>]`` and validates it itself
(:meth:`PlatformConfig.service`), so adding a service never edits this module.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "MARQUEE_"
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


class UrlSigningConfig(Section):
    """Signed URL tokens for media (manifests and segments): playback signs, edges verify (in Rust).
    ``keys`` maps key id -> secret (at least 16 bytes); several keys allow rotation."""

    keys: dict[str, SecretStr] = Field(default_factory=dict)
    signing_kid: str = ""

    @model_validator(mode="after")
    def _check_keys(self) -> UrlSigningConfig:
        for kid, secret in self.keys.items():
            if len(secret.get_secret_value().encode()) < 16:
                raise ValueError(f"url_signing.keys.{kid}: secret must be at least 16 bytes")
        if self.keys and self.signing_kid not in self.keys:
            raise ValueError(f"url_signing.signing_kid {self.signing_kid!r} is not one of url_signing.keys")
        return self


class StoreConfig(Section):
    """Where services keep their data. ``sqlite`` is embedded; distributed adapters plug in later."""

    backend: Literal["sqlite"] = "sqlite"
    path: Path | None = Field(None, description="SQLite file; default {data_dir}/marquee.db")


class BusConfig(Section):
    backend: Literal["memory"] = "memory"


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
    store: StoreConfig = StoreConfig()
    bus: BusConfig = BusConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)

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
