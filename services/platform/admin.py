"""Operator credentials for the `marquee` command on the platform's own machine.

Whoever can read the platform's configuration and data directory is its operator: the command mints a short-
lived admin access token with the platform's signing key instead of asking for a password."""

from __future__ import annotations

from services.common.auth import AccessTokens
from services.common.config import PlatformConfig
from services.platform.runtime import local_config

CLI_SUBJECT = "operator-cli"


def admin_metadata(config: PlatformConfig, ttl: int = 3600) -> tuple[tuple[str, str], ...]:
    tokens = AccessTokens(local_config(config).auth)
    token = tokens.issue(CLI_SUBJECT, roles=["admin"], ttl=ttl).token
    return (("authorization", f"Bearer {token}"),)
