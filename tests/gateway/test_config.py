"""The documented [services.gateway] section (docs/configuration.md) is valid and states the defaults."""

from __future__ import annotations

import tomllib
from pathlib import Path

from services.gateway.config import GatewayConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_documented_gateway_section_matches_the_defaults() -> None:
    text = DOC.read_text()
    block = text[text.index("```toml") + len("```toml") :]
    documented = tomllib.loads(block[: block.index("```")])["services"]["gateway"]
    config = GatewayConfig.model_validate(documented)
    defaults = GatewayConfig()
    assert config.limits == defaults.limits
    assert config.cors == defaults.cors
    assert config.immutable_paths == defaults.immutable_paths
    assert config.trusted_proxies == defaults.trusted_proxies
    assert config.grace_period == defaults.grace_period
    assert config.http.port == 8080  # what marquee up uses when the port is left at 0
