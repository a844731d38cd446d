"""Issue 15, finding 1: the all-in-one's shield is not an open door. Players reach it only with a valid signed URL,
and only when the configured policy lets players fall back to it (off by default); edges fill from it with a
credential of their own, so an edge in front of it keeps working whatever players may do."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.plugin import start as start_edge_tier
from marquee.native import TokenKeyring
from services.common.config import load_config
from services.platform.plugins import RunningService
from services.platform.runtime import Runtime, open_runtime
from tests.edge.conftest import TITLE

SEGMENT = f"{TITLE}/480p/seg-1.m4s"


async def _status(url: str, **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as reply:
        return reply.status, await reply.read()


async def _tier(tmp_path: Path, origin: Path, **edge: Any) -> AsyncIterator[tuple[Runtime, dict[str, str]]]:
    services = {"edge": {"origin": str(origin), "disk_bytes": 0, "shield_disk_bytes": 0, **edge}}
    runtime = open_runtime(load_config(data_dir=tmp_path / "data", services=services), ephemeral_ports=True)
    running: RunningService = await start_edge_tier(runtime)
    try:
        yield runtime, {e.label: e.address for e in running.endpoints}
    finally:
        await running.stop()
        await runtime.close()


@pytest.fixture
async def tier(tmp_path: Path, origin: Path) -> AsyncIterator[tuple[Runtime, dict[str, str]]]:
    async for t in _tier(tmp_path, origin):
        yield t


def _player_token(runtime: Runtime, acl: str = f"/v/{TITLE}/*") -> str:
    signing = runtime.config.url_signing
    keys = TokenKeyring({k: v.get_secret_value().encode() for k, v in signing.keys.items()}, signing.signing_kid)
    return keys.sign([acl], int(time.time()) + 60)


async def test_the_shield_refuses_players_by_default_and_serves_edges(
    tier: tuple[Runtime, dict[str, str]], origin: Path
) -> None:
    runtime, urls = tier
    data = (origin / SEGMENT).read_bytes()
    token = _player_token(runtime)
    shield = f"{urls['shield']}{SEGMENT}"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for label, url, headers in [
        ("no token", shield, {}),
        ("tampered token", f"{shield}?token={tampered}", {}),
        ("a player's valid token (players may not use the shield)", f"{shield}?token={token}", {}),
        ("a made-up fill credential", shield, {"x-fill-token": tampered}),
        ("a player token passed as a fill credential", shield, {"x-fill-token": token}),
    ]:
        status, _ = await _status(url, **headers)
        assert status == 403, label
    # the edges fill from the shield with their own credential: a player at an edge still gets the bytes
    for edge in ("edge-a", "edge-b"):
        assert await _status(f"{urls[edge]}{SEGMENT}?token={token}") == (200, data)
        assert (await _status(f"{urls[edge]}{SEGMENT}"))[0] == 403


async def test_players_may_fall_back_to_the_shield_when_configured(tmp_path: Path, origin: Path) -> None:
    async for runtime, urls in _tier(tmp_path, origin, shield_serves_players=True):
        shield = f"{urls['shield']}{SEGMENT}"
        assert await _status(f"{shield}?token={_player_token(runtime)}") == (200, (origin / SEGMENT).read_bytes())
        assert (await _status(shield))[0] == 403
        assert (await _status(f"{shield}?token={_player_token(runtime, '/v/other/*')}"))[0] == 403
