"""Issue 15, finding 6: geo-blocking follows the client's address, never the request body. A JP-only title plays
for a client the GeoIP database (a real MaxMind DB file, read by ``maxminddb``) places in JP, whatever region the
player claims; the configured network table is the fallback; x-forwarded-for counts only from trusted proxies.
The session's signed URLs carry the licensed regions, so the edge refuses them to a client elsewhere too."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import grpc
import m3u8
import pytest
from aiohttp.test_utils import make_mocked_request
from google.protobuf import field_mask_pb2
from multidict import CIMultiDict

from marquee.v1 import catalog_pb2
from marquee.v1 import playback_pb2 as pb
from services.common.config import GeoConfig
from services.common.geo import Geo
from tests.common.mmdb_writer import write_country_db
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback
from tests.playback.test_playback import fails

PROFILE = "accounts/g1/profiles/p1"
JAPAN, FRANCE, KOREA = "203.0.113.9", "198.51.100.7", "203.0.113.200"


@pytest.fixture
def geo_config(tmp_path: Path) -> GeoConfig:
    db = write_country_db(tmp_path / "countries.mmdb", {"203.0.113.0/24": "JP", "203.0.113.128/25": "KR"})
    return GeoConfig(
        database=db,
        networks={"FR": ["198.51.100.0/24"]},
        trusted_proxies=("127.0.0.1/32",),  # the test's calls come from loopback, as a gateway's would
        loopback_region="US",
    )


async def _japan_only(p: Playback) -> None:
    title = catalog_pb2.Title(name=f"titles/{TITLE}", licensed_regions=["JP"])
    mask = field_mask_pb2.FieldMask(paths=["licensed_regions"])
    await p.catalog.UpdateTitle(catalog_pb2.UpdateTitleRequest(title=title, update_mask=mask), metadata=p.admin)


async def _start(p: Playback, claimed: str, forwarded_for: str | None, stop: bool = True) -> pb.PlaybackSession:
    md = p.caller("g1", "p1")
    if forwarded_for is not None:
        md = (*md, ("x-forwarded-for", forwarded_for))
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile=PROFILE, client=pb.ClientInfo(region=claimed))
    session: pb.PlaybackSession = (await p.stub.StartPlayback(request, metadata=md)).session
    if stop:
        await p.stub.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=md)
    return session


async def test_the_region_comes_from_the_address_not_the_request(playback: Playback) -> None:
    await _japan_only(playback)
    blocked = grpc.StatusCode.FAILED_PRECONDITION
    # claiming JP from loopback (US) plays nothing: the hostile request of the issue
    await fails(_start(playback, "JP", None), blocked, "GEO_BLOCKED")
    # a client in France (the network table) claiming JP, one in Korea (a nested network of the database)
    await fails(_start(playback, "JP", FRANCE), blocked, "GEO_BLOCKED")
    await fails(_start(playback, "JP", KOREA), blocked, "GEO_BLOCKED")
    # a client in Japan plays, whatever it claims
    await _start(playback, "FR", JAPAN)
    await _start(playback, "", JAPAN)
    # an address the client wrote itself is not believed: the gateway appends the address it saw
    await fails(_start(playback, "JP", f"{JAPAN}, {FRANCE}"), blocked, "GEO_BLOCKED")
    await _start(playback, "US", f"{FRANCE}, {JAPAN}")


async def test_the_edges_and_the_manifests_check_the_region_too(playback: Playback) -> None:
    await _japan_only(playback)
    session = await _start(playback, "", JAPAN, stop=False)
    assert JAPAN not in session.manifest_urls.hls_uri
    async with aiohttp.ClientSession() as http:

        async def get(url: str, client: str | None) -> tuple[int, str]:
            headers = {"x-forwarded-for": client} if client else {}
            async with http.get(url, headers=headers) as reply:
                return reply.status, (await reply.read()).decode(errors="replace")

        status, master = await get(session.manifest_urls.hls_uri, JAPAN)
        assert status == 200
        assert (await get(session.manifest_urls.hls_uri, FRANCE))[0] == 403, "the URL passed to someone in France"
        variant = m3u8.loads(master).playlists[0].uri
        status, media = await get(variant, JAPAN)
        assert status == 200
        segment = m3u8.loads(media, uri=variant).segments[0].absolute_uri
        assert (await get(segment, JAPAN))[0] == 200
        for elsewhere in (FRANCE, KOREA, None):  # None: loopback itself, in US
            status, why = await get(segment, elsewhere)
            assert status == 403 and "not licensed" in why, elsewhere


def test_untrusted_peers_cannot_forward_and_fallbacks_apply(tmp_path: Path) -> None:
    db = write_country_db(tmp_path / "c.mmdb", {"203.0.113.0/24": "JP", "2001:db8::/32": "DE"})
    geo = Geo(GeoConfig(database=db, networks={"FR": ["198.51.100.0/24"]}, trusted_proxies=("10.0.0.0/8",)))
    try:
        assert geo.client_address("192.0.2.1", JAPAN) == "192.0.2.1", "an untrusted peer's header is ignored"
        assert geo.client_address("10.1.2.3", JAPAN) == JAPAN
        assert geo.client_address("10.1.2.3", f"{JAPAN}, 10.9.9.9") == JAPAN, "trusted hops are skipped"
        assert geo.client_address("10.1.2.3", "not-an-address") == "10.1.2.3"
        assert geo.client_address("::ffff:10.1.2.3", JAPAN) == JAPAN
        assert [geo.region(a) for a in (JAPAN, FRANCE, "2001:db8::5", "192.0.2.1", "127.0.0.1", "::1", "junk")] == [
            "JP",
            "FR",
            "DE",
            "",
            "US",
            "US",
            "",
        ]
    finally:
        geo.close()


def test_an_http_requests_client_is_its_peer_or_its_forwarded_chain() -> None:
    geo = Geo(GeoConfig(networks={"FR": ["198.51.100.0/24"]}, trusted_proxies=("10.0.0.0/8",)))
    headers = CIMultiDict([("X-Forwarded-For", FRANCE), ("X-Forwarded-For", "10.9.9.9")])  # two headers: one chain
    request = make_mocked_request("GET", "/", headers=headers)
    assert geo.http_client(request.clone(remote="10.1.2.3")) == (FRANCE, "FR")
    assert geo.http_client(request.clone(remote="192.0.2.1")) == ("192.0.2.1", ""), "an untrusted peer's header"
