"""The steering manifests as real players read them: hls.js's own content steering code (run in Node) on a
multivariant playlist rendered by the Rust renderer with the session's EXT-X-CONTENT-STEERING, against the
running steering server."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from marquee.native import Presentation
from marquee.v1 import steering_pb2 as pb
from services.common.config import ServerConfig
from services.steering.config import HttpConfig, SteeringConfig
from tests.native.manifest_samples import description_json
from tests.steering.conftest import Running

PLAYERS = Path(__file__).resolve().parent.parent / "players"
TITLE = "feature"


@pytest.fixture
def steering_config() -> SteeringConfig:
    return SteeringConfig(
        server=ServerConfig(port=0, drain_delay=0, grace_period=1), http=HttpConfig(port=0), ttl_seconds=1
    )


def node() -> str:
    path = shutil.which("node")
    if path is None or not (PLAYERS / "node_modules" / "hls.js").is_dir():
        pytest.fail("node and tests/players/node_modules are set up by ./dev test (npm ci in tests/players)")
    return path


async def run_hls(master: Path, rounds: int, bandwidth: int) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        node(),
        str(PLAYERS / "hls_steering.mjs"),
        str(master),
        "http://127.0.0.1:9/session/master.m3u8",
        str(rounds),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"HLS_BANDWIDTH": str(bandwidth), "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_hls_js_follows_the_steering_manifest(running: Running, tmp_path: Path) -> None:
    r = running
    for name, port in (("edge-a", 8081), ("edge-b", 8082)):
        await r.stub.RegisterEdge(r.edge(name, port), metadata=r.metadata)
    request = pb.GetSteeringRequest(session="playbackSessions/s1", title=f"titles/{TITLE}", client_address="10.0.0.1")
    answer = await r.stub.GetSteering(request, metadata=r.metadata)
    order = [p.id for p in answer.pathways]
    # what playback will do: the session's playlist lists the pathways it was given, the last one as default
    presentation = Presentation.from_json(description_json(title_id=TITLE))
    reload_uri = r.signed(answer.reload_uri)
    master = presentation.hls_multivariant(
        pathways=[(p.id, f"{p.base_uri}{TITLE}/") for p in answer.pathways],
        steering=(reload_uri, order[-1]),
    )
    (tmp_path / "master.m3u8").write_text(master)
    # an edge joins after the playlist was made, on another host: hls.js gets it as a clone of edge-a
    await r.stub.RegisterEdge(r.edge("edge-c", 8081, host="localhost"), metadata=r.metadata)
    first, second = (line for line in await run_hls(tmp_path / "master.m3u8", 2, 8_000_000) if "manifest" in line)
    priority = first["manifest"]["PATHWAY-PRIORITY"]
    assert set(priority) == {"edge-a", "edge-b", "edge-c"}
    assert first["pathwayPriority"] == priority
    assert first["pathwayId"] == priority[0], "hls.js moved to the pathway steering put first"
    assert first["reloadUri"] == reload_uri and first["ttl"] == 1
    assert f"_HLS_pathway={order[-1]}" in first["requested"] and "_HLS_throughput=8000000" in first["requested"]
    assert set(first["pathways"]) == {"edge-a", "edge-b", "edge-c"}
    clone_urls = first["levelUrls"]["edge-c"]
    assert len(clone_urls) == len(first["levelUrls"]["edge-a"])
    assert clone_urls == [u.replace("127.0.0.1", "localhost") for u in first["levelUrls"]["edge-a"]]
    # the reload after TTL reports the pathway hls.js is on now
    assert f"_HLS_pathway={first['pathwayId']}" in second["requested"]
    assert second["pathwayId"] == second["pathwayPriority"][0]


async def run_node(*args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        node(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out + err).decode()
    result: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return result


async def test_shaka_orders_dash_base_urls_by_the_steering_manifest(running: Running, tmp_path: Path) -> None:
    r = running
    for name, port in (("edge-a", 8081), ("edge-b", 8082)):
        await r.stub.RegisterEdge(r.edge(name, port), metadata=r.metadata)
    request = pb.GetSteeringRequest(session="playbackSessions/d1", title=f"titles/{TITLE}", client_address="10.0.0.1")
    answer = await r.stub.GetSteering(request, metadata=r.metadata)
    order = [p.id for p in answer.pathways]
    presentation = Presentation.from_json(description_json(title_id=TITLE, seconds=20))
    steering_uri = r.signed(answer.reload_uri.replace("/steering/hls/", "/steering/dash/"))
    # the MPD's default service location is the last pathway: only the steering answer can put the other first
    mpd = presentation.dash_mpd(
        pathways=[(p.id, f"{p.base_uri}{TITLE}/") for p in reversed(answer.pathways)],
        steering=(steering_uri, order[-1]),
    )
    (tmp_path / "session.mpd").write_text(mpd)
    got = await run_node(str(PLAYERS / "dash_steering.cjs"), str(tmp_path / "session.mpd"))
    assert got["errors"] == []
    expected = [f"{p.base_uri}{TITLE}/2160p/seg-1.m4s" for p in answer.pathways]
    assert got["uris"] == expected, "Shaka tries the edges in the order steering gave"
