"""The documented [store] section (docs/configuration.md) is valid and states the defaults; store flags of
`marquee up` override it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from services.common.config import ConfigError, StoreConfig, load_config
from services.platform.cli import _with_store

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_documented_store_section_matches_the_defaults() -> None:
    text = DOC.read_text()
    block = text[text.index("```toml") + len("```toml") :]
    documented = tomllib.loads(block[: block.index("```")])["store"]
    assert StoreConfig.model_validate(documented) == StoreConfig()


def test_cql_settings_are_validated() -> None:
    for bad in (["127.0.0.1:0"], [":9042"], ["host:port"], []):
        with pytest.raises(ConfigError, match="contact_points"):
            load_config(store={"kind": "cql", "cql": {"contact_points": bad}})
    with pytest.raises(ConfigError, match="kind"):
        load_config(store={"kind": "mysql"})
    with pytest.raises(ConfigError, match="datacenters"):
        load_config(store={"kind": "cql", "cql": {"datacenters": {"dc1": 0}}})


def test_up_flags_select_the_store() -> None:
    config = load_config(store={"cql": {"local_dc": "dc2", "replication_factor": 3}})
    chosen = _with_store(config, None, "10.0.0.5:9042,10.0.0.6:9042")
    assert chosen.store.kind == "cql"
    assert chosen.store.cql.contact_points == ["10.0.0.5:9042", "10.0.0.6:9042"]
    assert chosen.store.cql.local_dc == "dc2" and chosen.store.cql.replication_factor == 3  # the rest is kept
    assert _with_store(config, "cql", None).store.cql.contact_points == ["127.0.0.1:9042"]
    assert _with_store(config, None, None).store.kind == "sqlite"
