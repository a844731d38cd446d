"""SteeringService over real gRPC and its content steering manifests over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import grpc
import pytest

from marquee.v1 import steering_pb2 as pb
from tests.steering.conftest import Running

SESSION, TITLE = "playbackSessions/s1", "titles/the-godfather-1972"


async def steer(r: Running, session: str = SESSION, **kw: Any) -> pb.GetSteeringResponse:
    kw.setdefault("client_address", "203.0.113.7")
    request = pb.GetSteeringRequest(session=session, title=TITLE, **kw)
    reply: pb.GetSteeringResponse = await r.stub.GetSteering(request, metadata=r.metadata)
    return reply


async def fetch(url: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        text = await resp.text()
        is_json = resp.headers.get("Content-Type", "").startswith("application/json")
        return resp.status, dict(resp.headers), json.loads(text) if is_json else text


async def test_register_list_and_steer(running: Running) -> None:
    r = running
    for i, name in enumerate(("edge-a", "edge-b")):
        reply = await r.stub.RegisterEdge(r.edge(name, 8081 + i), metadata=r.metadata)
        assert reply.edge.name == f"edges/{name}" and reply.edge.state == pb.EDGE_STATE_HEALTHY
        assert reply.heartbeat_interval.seconds == 5
    await r.stub.RegisterEdge(r.edge("shield", 8090, role=pb.EDGE_ROLE_SHIELD), metadata=r.metadata)
    listed = await r.stub.ListEdges(pb.ListEdgesRequest(page_size=2), metadata=r.metadata)
    rest = await r.stub.ListEdges(pb.ListEdgesRequest(page_token=listed.next_page_token), metadata=r.metadata)
    assert [e.name for e in listed.edges] + [e.name for e in rest.edges] == [
        "edges/edge-a",
        "edges/edge-b",
        "edges/shield",
    ]
    answer = await steer(r)
    ids = [p.id for p in answer.pathways]
    assert set(ids) == {"edge-a", "edge-b"}, "the shield is never offered to players (shield_fallback is off)"
    assert answer.pathways[0].reason == pb.STEERING_REASON_CACHE_AFFINITY
    assert answer.pathways[1].reason == pb.STEERING_REASON_ZONE_MATCH
    assert answer.ttl.seconds == 10 and answer.reload_uri == f"{r.http.public_url}/steering/hls/s1"
    beat = pb.HeartbeatRequest(edge="edges/edge-a", healthy=True, egress_bps=5 * 10**8, cached_titles=["x"])
    await r.stub.Heartbeat(beat, metadata=r.metadata)
    got = await r.stub.GetEdge(pb.GetEdgeRequest(name="edges/edge-a"), metadata=r.metadata)
    assert got.edge.load == pytest.approx(0.5)
    await r.stub.DeregisterEdge(pb.DeregisterEdgeRequest(name="edges/edge-a"), metadata=r.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as lost:
        await r.stub.Heartbeat(beat, metadata=r.metadata)
    assert lost.value.code() == grpc.StatusCode.NOT_FOUND
    assert "edge-a" not in [p.id for p in (await steer(r)).pathways]


async def test_hls_and_dash_manifests(running: Running) -> None:
    r = running
    await r.stub.RegisterEdge(r.edge("edge-a", 8081), metadata=r.metadata)
    await r.stub.RegisterEdge(r.edge("edge-b", 8082), metadata=r.metadata)
    first = await steer(r)
    base = f"{r.http.public_url}/steering"
    url = r.signed(f'{base}/hls/s1?_HLS_pathway="{first.pathways[0].id}"&_HLS_throughput=8000000')
    status, headers, hls = await fetch(url)
    token = url.split("token=")[1].split("&")[0]
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert hls == {
        "VERSION": 1,
        "TTL": 10,
        "RELOAD-URI": f"{base}/hls/s1?token={token}",  # the player reloads with the session's token
        "PATHWAY-PRIORITY": [p.id for p in first.pathways],
    }
    assert all(isinstance(v, t) for v, t in zip(hls.values(), (int, int, str, list), strict=True))
    status, _, dash = await fetch(
        f'{base}/dash/s1?token={token}&_DASH_pathway="edge-b,edge-a"&_DASH_throughput=9000000,8000000'
    )
    assert status == 200
    assert dash == {
        "VERSION": 1,
        "TTL": 10,
        "RELOAD-URI": f"{base}/dash/s1?token={token}",
        "SERVICE-LOCATION-PRIORITY": [p.id for p in first.pathways],
        "PATHWAY-PRIORITY": [p.id for p in first.pathways],
    }
    # edges that join after the session's playlist was made: one whose URIs differ by hostname only is offered
    # as a clone of the listed pathway it matches (HOST replaces just the hostname); another is only listed
    a_port = 8081
    await r.stub.RegisterEdge(r.edge("edge-c", a_port, host="localhost"), metadata=r.metadata)
    await r.stub.RegisterEdge(r.edge("edge-d", 9999), metadata=r.metadata)
    _, _, hls = await fetch(r.signed(f"{base}/hls/s1"))
    assert {"edge-c", "edge-d"} <= set(hls["PATHWAY-PRIORITY"])
    assert hls["PATHWAY-CLONES"] == [{"BASE-ID": "edge-a", "ID": "edge-c", "URI-REPLACEMENT": {"HOST": "localhost"}}]
    # a poor throughput report on the current pathway moves the player off it
    current = hls["PATHWAY-PRIORITY"][0]
    _, _, hls = await fetch(r.signed(f'{base}/hls/s1?_HLS_pathway="{current}"&_HLS_throughput=1000'))
    assert hls["PATHWAY-PRIORITY"][0] != current and hls["PATHWAY-PRIORITY"][-1] == current


async def test_bad_input_gets_clear_errors(running: Running) -> None:
    r = running
    await r.stub.RegisterEdge(r.edge("edge-a", 8081), metadata=r.metadata)
    cases: list[dict[str, Any]] = [
        {"client_address": "300.1.2.3"},
        {"client_address": ""},
        {"client_address": "10.0.0.1", "country": "France"},
        {"client_address": "10.0.0.1", "throughput_bps": -1},
        {"client_address": "10.0.0.1", "throughput_bps": 10**15},
    ]
    for kw in cases:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await steer(r, session="playbackSessions/new", **kw)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kw
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await r.stub.GetSteering(pb.GetSteeringRequest(session="s1", title=TITLE), metadata=r.metadata)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for request in (
        r.edge("bad id!", 1),
        pb.RegisterEdgeRequest(
            edge_id="e", edge=pb.Edge(base_uri="ftp://x/", capacity_bps=1, zone="z", role=pb.EDGE_ROLE_EDGE)
        ),
        pb.RegisterEdgeRequest(
            edge_id="e", edge=pb.Edge(base_uri="http://x/v/", capacity_bps=0, zone="z", role=pb.EDGE_ROLE_EDGE)
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await r.stub.RegisterEdge(request, metadata=r.metadata)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await r.stub.ListEdges(pb.ListEdgesRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as forged:
        await r.stub.ListEdges(pb.ListEdgesRequest(page_token="garbage"), metadata=r.metadata)
    assert forged.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await steer(r)
    base = f"{r.http.public_url}/steering"
    for url, status in [
        (f"{base}/hls/nobody", 404),
        (f"{base}/hls/s1?_HLS_throughput=fast", 400),
        (f"{base}/hls/s1?_HLS_pathway=edge-a&_HLS_throughput=-5", 400),
        (f"{base}/hls/s1?_HLS_pathway=edge-a&_HLS_throughput=1e400", 400),
        (f"{base}/dash/s1?_DASH_pathway={','.join(['p'] * 50)}", 400),
        (f"{base}/mpd/s1", 404),
    ]:
        got, _, body = await fetch(r.signed(url))
        assert got == status, url
        if status == 400:
            assert "error" in body
