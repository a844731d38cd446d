"""Platform configuration: file, environment and explicit values, validated with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from services.common.config import ConfigError, load_config


class _SvcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_profiles: int = 5


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "marquee.toml"
    path.write_text(text)
    return path


def test_precedence_defaults_file_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, '[auth]\naccess_token_ttl = 100\nissuer = "file"\n[services.accounts]\nmax_profiles = 3\n')
    assert load_config().auth.access_token_ttl == 900
    cfg = load_config(path)
    assert (cfg.auth.access_token_ttl, cfg.auth.issuer) == (100, "file")
    monkeypatch.setenv("MARQUEE_AUTH__ACCESS_TOKEN_TTL", "200")
    cfg = load_config(path)
    assert (cfg.auth.access_token_ttl, cfg.auth.issuer) == (200, "file")  # env wins, file keys kept
    cfg = load_config(path, auth={"access_token_ttl": 300})
    assert cfg.auth.access_token_ttl == 300
    assert cfg.service("accounts", _SvcConfig).max_profiles == 3


def test_config_file_named_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARQUEE_CONFIG", str(_write(tmp_path, 'data_dir = "/srv/marquee"\n')))
    assert load_config().data_dir == Path("/srv/marquee")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[auth]\naccess_token_ttl = -1\n", "auth.access_token_ttl"),
        ("[auth]\nunknown_field = 1\n", "auth.unknown_field"),
        ('[auth]\nsigning_kid = "a"\n[auth.keys]\na = "short"\n', "at least 32 bytes"),
        ('[auth]\nsigning_kid = "b"\n[auth.keys]\na = "' + "x" * 40 + '"\n', "not one of auth.keys"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert expected in str(err.value)


def test_missing_file_and_bad_service_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    cfg = load_config(_write(tmp_path, '[services.accounts]\nmax_profiles = "many"\n'))
    with pytest.raises(ConfigError, match=r"services\.accounts\.max_profiles"):
        cfg.service("accounts", _SvcConfig)


def test_secrets_are_not_printed() -> None:
    cfg = load_config(auth={"keys": {"k1": "s" * 40}, "signing_kid": "k1"})
    assert "s" * 40 not in repr(cfg) and "s" * 40 not in str(cfg.model_dump())
