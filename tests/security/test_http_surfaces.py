"""The hostile client against every HTTP surface of media delivery: both edges and the shield (a segment), steering
(the session's content steering manifest), playback's manifest endpoint (the session's HLS playlist) and the
gateway (UpdatePosition over gRPC-web, where the credential is the access token). Each is tried with a valid
credential and with a missing, tampered, expired, other-title and ended-session one; the table of what was tried
and what came back is printed, and every refusal must be the right 4xx (the gateway's, the right gRPC status:
gRPC-web carries it in the trailers of an HTTP 200)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from marquee.v1 import playback_pb2
from services.common import urltokens
from tests.gateway.grpcweb import call
from tests.security.conftest import Stack, token_of
from tests.security.test_revocation import segment_urls

pytestmark = pytest.mark.asyncio(loop_scope="module")

KINDS = ("valid", "missing", "tampered", "expired", "other-title", "ended-session")
URL_EXPECTED = {"valid": 200, "missing": 403, "tampered": 403, "expired": 410, "other-title": 403, "ended-session": 410}
GATEWAY_EXPECTED = {
    "valid": grpc.StatusCode.OK,
    "missing": grpc.StatusCode.UNAUTHENTICATED,
    "tampered": grpc.StatusCode.UNAUTHENTICATED,
    "expired": grpc.StatusCode.UNAUTHENTICATED,
    "other-title": grpc.StatusCode.PERMISSION_DENIED,
    "ended-session": grpc.StatusCode.FAILED_PRECONDITION,
}


@dataclass
class Probe:
    surface: str
    kind: str
    what: str
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


def tampered(token: str) -> str:
    """The token with the last character of its signature changed."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def with_token(url: str, token: str | None) -> str:
    base, _, query = url.partition("?")
    params = [p for p in query.split("&") if p and not p.startswith("token=")]
    if token is not None:
        params.insert(0, f"token={token}")
    return base + ("?" + "&".join(params) if params else "")


async def get(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as reply:
        await reply.read()
        return reply.status


def table(probes: list[Probe]) -> str:
    header = Probe("SURFACE", "CREDENTIAL", "REQUEST", "EXPECTED", "GOT")
    rows = [header, *probes]
    widths = [max(len(getattr(p, f)) for p in rows) for f in ("surface", "kind", "what", "expected", "got")]
    lines = []
    for p in rows:
        cells = (p.surface, p.kind, p.what, p.expected, p.got)
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + ("" if p.ok else "  <-- WRONG")
        )
    return "\n".join(lines)


async def test_every_delivery_surface_refuses_bad_credentials(stack: Stack) -> None:
    keys = stack.url_keys
    live = await stack.start("h1")
    ended = await stack.start("h2")
    await stack.stop("h2", ended)
    live_token, ended_token = token_of(live.manifest_urls.hls_uri), token_of(ended.manifest_urls.hls_uri)
    live_id = live.name.removeprefix("playbackSessions/")
    # a token the platform really signed, for another title and session; one for this session, expired
    other = keys.sign(urltokens.session_acl("0123456789abcdef01234567", "other-title"), int(time.time()) + 300, "x")
    expired = keys.sign(urltokens.session_acl(live_id, "pattern"), int(time.time()) - 1, live_id)
    credential = {
        "valid": live_token,
        "missing": None,
        "tampered": tampered(live_token),
        "expired": expired,
        "other-title": other,
        "ended-session": ended_token,
    }
    probes: list[Probe] = []
    async with aiohttp.ClientSession() as http:
        live_urls = {
            **await segment_urls(http, stack, live.manifest_urls.hls_uri),
            "steering": live.steering_uri,
            "playback manifests": live.manifest_urls.hls_uri,
        }
        ended_urls = {
            **{node: url.replace(live_token, ended_token) for node, url in live_urls.items() if "/v/" in url},
            "steering": ended.steering_uri,
            "playback manifests": ended.manifest_urls.hls_uri,
        }
        assert live.steering_uri, "the session has a steering URI"
        # the ended session's revocation reaches every edge through steering's feed: wait for what they report
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all([await get(http, u) == 410 for u in ended_urls.values()]):
                break
            await asyncio.sleep(0.05)
        for surface in live_urls:
            for kind in KINDS:
                url = (
                    ended_urls[surface] if kind == "ended-session" else with_token(live_urls[surface], credential[kind])
                )
                status = await get(http, url)
                path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
                probes.append(Probe(surface, kind, f"GET /{path[:48]}", str(URL_EXPECTED[kind]), str(status)))
        probes += await gateway_probes(http, stack, live, ended)
    print("\nhostile client vs the HTTP surfaces of media delivery:\n" + table(probes))
    assert all(p.ok for p in probes), table([p for p in probes if not p.ok])
    await stack.stop("h1", live)


async def gateway_probes(
    http: aiohttp.ClientSession, stack: Stack, live: playback_pb2.PlaybackSession, ended: playback_pb2.PlaybackSession
) -> list[Probe]:
    gateway = next(a for a in stack.endpoints["gateway"].values() if a.startswith("http")).rstrip("/")
    tokens = stack.platform.runtime.deps.tokens
    own = stack.caller("h1")[0][1].removeprefix("Bearer ")
    expired = tokens.issue("h1", profile_id="p1", plan="basic", now=time.time() - 7200, ttl=60).token
    authorization = {
        "valid": own,
        "missing": None,
        "tampered": tampered(own),
        "expired": expired,
        "other-title": stack.caller("h3")[0][1].removeprefix("Bearer "),  # another account's token, on h1's session
        "ended-session": stack.caller("h2")[0][1].removeprefix("Bearer "),  # h2's own token, on its ended session
    }
    probes = []
    for kind in KINDS:
        session = ended if kind == "ended-session" else live
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        request = playback_pb2.UpdatePositionRequest(
            session=session.name, position=duration_pb2.Duration(seconds=1), event_time=now
        )
        headers = {"authorization": f"Bearer {authorization[kind]}"} if authorization[kind] else {}
        reply = await call(
            http,
            gateway,
            "/marquee.v1.PlaybackService/UpdatePosition",
            [request.SerializeToString()],
            headers=headers,
        )
        got = f"HTTP {reply.http_status} {reply.code.name}"
        expected = f"HTTP 200 {GATEWAY_EXPECTED[kind].name}"
        probes.append(Probe("gateway", kind, "POST UpdatePosition (gRPC-web)", expected, got))
    return probes
