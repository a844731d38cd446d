"""Content keys (services/encoder/keys.py) on both stores: made once per title and track type, stored only wrapped,
bound to their row, unwrapped by any configured master key, rewrapped by the newest one; the master key config."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest
from pydantic import SecretStr

from services.common.config import ConfigError, ContentKeysConfig, load_config
from services.common.store.port import Scannable, Store
from services.encoder import schema
from services.encoder.keys import TRACK_TYPES, ContentKeys, KeyUnavailable, MasterKeys
from services.encoder.schema import CONTENT_KEYS
from services.platform.runtime import local_config

ROOT = Path(__file__).resolve().parents[2]
OLD = "old-master-secret-0123456789abcdef0123456789"
NEW = "new-master-secret-0123456789abcdef0123456789"


def masters(wrapping: str, **keys: str) -> MasterKeys:
    return MasterKeys(ContentKeysConfig(keys={k: SecretStr(v) for k, v in keys.items()}, wrapping_kid=wrapping))


@pytest.fixture
async def store(any_store: Store) -> Store:
    await any_store.migrate(schema.SCHEMA)
    return any_store


async def test_one_key_per_title_and_track_type_made_once(store: Store) -> None:
    keys = ContentKeys(store, masters("old", old=OLD))
    first = await keys.get_or_create("film")
    assert sorted(first) == sorted(TRACK_TYPES)
    assert all(len(k.kid) == 16 and len(k.key) == 16 for k in first.values())
    assert first["video"].key != first["audio"].key and first["video"].kid != first["audio"].kid
    assert await keys.get_or_create("film") == first  # the same keys again, never new ones
    assert await ContentKeys(store, masters("old", old=OLD)).get("film") == first
    other = await keys.get_or_create("other-film")
    assert {k.key for k in other.values()}.isdisjoint({k.key for k in first.values()})
    assert await keys.get("no-such-film") == {}
    assert "key=" not in repr(first["video"]) and first["video"].key.hex() not in repr(first)


async def test_keys_are_stored_only_wrapped(store: Store) -> None:
    keys = await ContentKeys(store, masters("old", old=OLD)).get_or_create("film")
    for track_type, key in keys.items():
        row = await store.get(CONTENT_KEYS, {"title_id": "film", "track_type": track_type})
        assert row is not None and row["master_kid"] == "old" and row["kid"] == key.kid
        assert key.key not in row["wrapped_key"]
        assert len(row["wrapped_key"]) == 12 + 16 + 16  # nonce, the key encrypted, the GCM tag


async def test_a_tampered_or_moved_wrapped_key_does_not_unwrap(store: Store) -> None:
    keys = ContentKeys(store, masters("old", old=OLD))
    made = await keys.get_or_create("film")
    video = await store.get(CONTENT_KEYS, {"title_id": "film", "track_type": "video"})
    assert video is not None
    # the video's wrapped key copied onto another title's row (same KID): bound to its row, it does not unwrap
    await store.insert(CONTENT_KEYS, {**video, "title_id": "stolen"})
    with pytest.raises(KeyUnavailable, match="not this row's"):
        await keys.get("stolen")
    # ... nor onto the audio row of the same title
    await store.update(CONTENT_KEYS, {"title_id": "film", "track_type": "audio"}, {"wrapped_key": video["wrapped_key"]})
    with pytest.raises(KeyUnavailable):
        await keys.get("film")
    # one flipped bit
    flipped = bytearray(video["wrapped_key"])
    flipped[20] ^= 1
    await store.insert(CONTENT_KEYS, {**video, "title_id": "flipped", "wrapped_key": bytes(flipped)})
    with pytest.raises(KeyUnavailable):
        await keys.get("flipped")
    assert made["video"].key != bytes(16)


async def test_rotation_newest_wraps_any_unwraps_rewrap_moves_all(store: Store) -> None:
    old = ContentKeys(store, masters("old", old=OLD))
    made = {title: await old.get_or_create(title) for title in ("a", "b", "c")}
    # a wrong master key under the same id does not unwrap (and says so)
    with pytest.raises(KeyUnavailable):
        await ContentKeys(store, masters("old", old=NEW)).get("a")
    # the new key added and made the wrapping one: old keys still unwrap, new titles are wrapped by the new one
    both = ContentKeys(store, masters("new", old=OLD, new=NEW))
    assert await both.get("a") == made["a"]
    made["d"] = await both.get_or_create("d")
    row = await store.get(CONTENT_KEYS, {"title_id": "d", "track_type": "video"})
    assert row is not None and row["master_kid"] == "new"
    # without the old key, the old titles' keys are unavailable until rewrapped
    only_new = ContentKeys(store, masters("new", new=NEW))
    with pytest.raises(KeyUnavailable, match="'old' is not configured"):
        await only_new.get("a")
    scannable = cast(Scannable, store)  # both test stores scan
    assert await both.rewrap(scannable, batch=2) == (6, 2)
    assert await both.rewrap(scannable) == (0, 8)  # again: nothing left to do
    for title, keys in made.items():
        assert await only_new.get(title) == keys


def test_master_key_config() -> None:
    with pytest.raises(ConfigError, match="needs a master key"):
        MasterKeys(ContentKeysConfig())
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ContentKeysConfig(keys={"k": SecretStr("short")}, wrapping_kid="k")
    with pytest.raises(ValueError, match=r"not one of content_keys\.keys"):
        ContentKeysConfig(keys={"k": SecretStr(OLD)}, wrapping_kid="other")
    with pytest.raises(ValueError, match="not a key id"):
        ContentKeysConfig(keys={"bad id!": SecretStr(OLD)}, wrapping_kid="bad id!")


def test_the_all_in_one_generates_and_keeps_a_master_key(tmp_path: Path) -> None:
    first = local_config(load_config(None, data_dir=tmp_path))
    assert first.content_keys.wrapping_kid == "local"
    secret = first.content_keys.keys["local"].get_secret_value()
    assert len(secret) >= 32
    path = tmp_path / "secrets" / "content-master-key"
    assert path.read_text().strip() == secret and path.stat().st_mode & 0o077 == 0
    again = local_config(load_config(None, data_dir=tmp_path))
    assert again.content_keys.keys["local"].get_secret_value() == secret
    configured = ContentKeysConfig(keys={"k1": SecretStr(OLD)}, wrapping_kid="k1")
    kept = local_config(load_config(None, data_dir=tmp_path / "other", content_keys=configured))
    assert kept.content_keys == configured


def test_marquee_keys_rewrap_command(tmp_path: Path) -> None:
    config = tmp_path / "marquee.toml"

    def write(wrapping: str, **keys: str) -> None:
        lines = [f'data_dir = "{tmp_path / "data"}"', "[content_keys]", f'wrapping_kid = "{wrapping}"']
        lines += ["[content_keys.keys]", *(f'{k} = "{v}"' for k, v in keys.items())]
        config.write_text("\n".join(lines) + "\n")

    def marquee(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "services.platform.cli", "--config", str(config), *args]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)

    async def make() -> None:
        from services.common.store.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "data" / "marquee.db")
        try:
            await store.migrate(schema.SCHEMA)
            await ContentKeys(store, masters("old", old=OLD)).get_or_create("film")
        finally:
            await store.close()

    (tmp_path / "data").mkdir()
    asyncio.run(make())
    write("new", old=OLD, new=NEW)
    done = marquee("keys", "rewrap")
    assert done.returncode == 0, done.stderr
    assert "2 content key(s) rewrapped with master key 'new', 0 already were" in done.stdout
    write("new", new=NEW)
    done = marquee("keys", "rewrap")
    assert done.returncode == 0 and "0 content key(s) rewrapped" in done.stdout and "2 already were" in done.stdout
    write("other", other=OLD)  # a master key that wrapped none of them
    done = marquee("keys", "rewrap")
    assert done.returncode == 1 and "'new' is not configured" in done.stderr
