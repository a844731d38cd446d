"""The one configuration `marquee up --distributed` writes for its processes: the user's file with the distributed
settings over it, read back by the same loader every `marquee serve` uses; and the replica plan."""

from __future__ import annotations

import tomllib
from pathlib import Path

from services.common.config import load_config
from services.platform.distributed import REPLICAS, plan_children, replica_counts, write_config
from services.platform.plugins import discover
from services.platform.tomlout import dumps, merge


def test_toml_written_reads_back_the_same() -> None:
    document = {
        "data_dir": "/srv/marquee",
        "top": 1.5,
        "flag": True,
        "addresses": {"accounts": "127.0.0.1:1,127.0.0.1:2", "odd key": 'quote " and \\ slash'},
        "services": {"accounts": {"max_profiles": 4, "demo": {"enabled": False}}, "empty": {}},
        "plans": [{"id": "basic", "streams": 1}],
        "list": ["a", "b"],
    }
    assert tomllib.loads(dumps(document)) == document


def test_merge_lays_tables_over_tables() -> None:
    base = {"store": {"kind": "sqlite", "path": "x.db"}, "auth": {"access_token_ttl": 600}}
    merged = merge(base, {"store": {"kind": "cql"}, "bus": {"kind": "redis"}})
    assert merged == {
        "store": {"kind": "cql", "path": "x.db"},
        "auth": {"access_token_ttl": 600},
        "bus": {"kind": "redis"},
    }


def test_every_process_reads_the_users_settings_and_the_distributed_ones(tmp_path: Path) -> None:
    user = tmp_path / "mine.toml"
    user.write_text(
        '[auth]\naccess_token_ttl = 600\n\n[services.accounts]\nmax_profiles = 3\n\n[bus]\nkind = "memory"\n'
    )
    config = load_config(user, data_dir=tmp_path / "data")
    plugins = discover()
    counts = replica_counts(plugins, 3)
    assert counts["accounts"] == 3 and counts["playback"] == 3
    assert counts["gateway"] == counts["edge"] == 1
    assert all(counts[name] == fixed for name, fixed in REPLICAS.items() if fixed is not None)
    waves, addresses = plan_children(plugins, counts, tmp_path / "unused.toml", tmp_path / "data", True)
    assert len(addresses["accounts"].split(",")) == 3 and len(addresses["steering"].split(",")) == 3
    ports = [c.port for wave in waves for c in wave if c.port is not None]
    assert len(ports) == len(set(ports)), "every replica on a port of its own"
    # the edges name protected titles' raw keys on the first playback replica's manifest site
    children = {f"{c.service}-{c.index}": c for wave in waves for c in wave}
    playback_site = f"http://127.0.0.1:{children['playback-1'].env['MARQUEE_SERVICES__PLAYBACK__HTTP__PORT']}"
    assert children["edge-1"].env["MARQUEE_SERVICES__EDGE__KEY_URI_BASE"] == playback_site
    path = write_config(config, user, addresses, "redis://127.0.0.1:6390/0")
    written = load_config(path)
    assert written.auth.access_token_ttl == 600 and written.services["accounts"]["max_profiles"] == 3
    assert (written.bus.kind, written.limits.kind, written.state.kind) == ("redis", "redis", "redis")
    assert written.redis.url == "redis://127.0.0.1:6390/0"
    assert written.addresses == addresses
    assert written.store.kind == "sqlite" and written.sqlite_path == (tmp_path / "data" / "marquee.db").resolve()
