"""The licence service (services/playback/license.py) on the real playback path over loopback: catalog, steering,
the encoder holding the master keys (its ContentKeyService), playback with LicenseService and the ClearKey HTTP
endpoint, and an edge serving a title encrypted with the keys the encoder's key store made for it.

Happy path: the session's manifest names the licence URL, the W3C ClearKey exchange (and AcquireLicense) gives the
keys the encoder stored, and they decrypt the segments the edge serves (the independent reference decryption gives
back the clear segments). Hostile: no token, a tampered, expired or revoked token, another account's or profile's
session, a stopped or unknown session, a key id of another title, a region the title left, a maturity limit,
malformed JSON and base64, too many key ids, an oversized body; each refusal has its HTTP status and its
ErrorInfo reason (JSON body over HTTP, grpc-status-details-bin over gRPC)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import grpc
import m3u8
import pytest
from google.protobuf import field_mask_pb2
from pydantic import SecretStr

from marquee.v1 import catalog_pb2, common_pb2, content_keys_pb2, content_keys_pb2_grpc, license_pb2
from marquee.v1 import playback_pb2 as pb
from services.common.auth import ServiceToken
from services.common.config import ContentKeysConfig, GeoConfig
from services.common.ratelimit import Rate
from services.common.store.port import Store
from services.encoder import schema as encoder_schema
from services.encoder.keys import ContentKey, ContentKeys, MasterKeys, as_encryptor_keys
from services.encoder.media import protect
from services.playback.config import LicenseConfig, PlaybackConfig
from tests.cql import open_test_store
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback, add_title_on_media, playback_stack
from tests.playback.test_playback import fails
from tests.protect import reference
from tests.protect.titles import protect_title

MASTER = ContentKeysConfig(keys={"m1": SecretStr("licence-test-master-secret-0123456789abcdef")}, wrapping_kid="m1")
PROFILE = "accounts/a1/profiles/p1"
NS = {"d": "urn:mpeg:dash:schema:mpd:2011", "dashif": "https://dashif.org/CPS"}
CLEARKEY = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def playback_config(playback_config: PlaybackConfig) -> PlaybackConfig:
    return playback_config.model_copy(update={"license": LicenseConfig(max_key_ids=4, max_body_bytes=1024)})


@asynccontextmanager
async def protected_stack(
    tmp_path: Path,
    origin: Path,
    config: PlaybackConfig,
    geo_config: GeoConfig,
    store_kind: str,
    request: pytest.FixtureRequest,
    accounts: bool = False,
) -> AsyncIterator[Playback]:
    """The playback stack with the encoder running and the title protected by the keys its key store made (and
    with ``accounts``, the accounts service)."""
    store = await open_test_store(store_kind, tmp_path, request, "all")
    try:
        # the encoder's key store makes the title's keys (as a protected encode does), and the title is encrypted
        # with them into this test's origin
        await store.migrate(encoder_schema.SCHEMA)
        keys = await ContentKeys(store, MasterKeys(MASTER)).get_or_create(TITLE)
        protected = tmp_path / "protected-origin"
        title = protect_title(origin / TITLE, protected / TITLE, "cenc", as_encryptor_keys(keys), hls_aes128=True)
        doc = title.description  # announced as the encoder announces it (media.json's protection entry)
        kinds = {r["id"]: kind for kind in ("video", "audio") for r in doc[kind]}
        encryptors = {r: (kinds[r], e) for r, e in title.encryptors.items()}
        doc["protection"] = protect.description("cenc", encryptors, hls_aes128=True)
        (protected / TITLE / "media.json").write_text(json.dumps(doc))
        async with playback_stack(
            tmp_path, protected, config, store, geo_config, content_keys=MASTER, accounts=accounts
        ) as p:
            yield p
    finally:
        await store.close()


@pytest.fixture(name="playback")
async def protected_playback(
    tmp_path: Path,
    origin: Path,
    playback_config: PlaybackConfig,
    geo_config: GeoConfig,
    with_accounts: bool,
    store_kind: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Playback]:
    """The protected stack as the ``playback`` fixture, here and where it is imported (test_downloads.py,
    test_license_browser.py); the accounts service runs too when ``with_accounts`` (conftest.py) says so."""
    async with protected_stack(
        tmp_path, origin, playback_config, geo_config, store_kind, request, accounts=with_accounts
    ) as p:
        yield p


async def stored_keys(store: Store) -> dict[str, ContentKey]:
    """The title's keys as the encoder's store holds them (unwrapped with the master key)."""
    return await ContentKeys(store, MasterKeys(MASTER)).get(TITLE)


async def start(p: Playback, md: Any, profile: str = PROFILE) -> pb.PlaybackSession:
    request = pb.StartPlaybackRequest(title=f"titles/{TITLE}", profile=profile)
    session: pb.PlaybackSession = (await p.stub.StartPlayback(request, metadata=md)).session
    return session


def bearer(md: Any) -> dict[str, str]:
    return {"Authorization": dict(md)["authorization"]}


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as s, s.post(url, data=data, headers=headers or {}) as r:
        text = await r.text()
        try:
            doc = json.loads(text)
        except ValueError:
            doc = text
        return r.status, doc, dict(r.headers)


async def fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200, url
        return await r.read()


def clearkey_request(*kids: bytes) -> dict[str, Any]:
    return {"kids": [b64url(k) for k in kids], "type": "temporary"}


def refused(status: int, doc: Any, want_status: int, reason: str) -> None:
    assert status == want_status, doc
    assert isinstance(doc, dict) and doc["error"]["reason"] == reason, doc
    assert doc["error"]["message"]


async def test_clearkey_licence_gives_the_stored_keys_and_they_decrypt_the_title(
    playback: Playback, origin: Path
) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    keys = await stored_keys(playback.store)
    assert sorted(keys) == ["audio", "video"]
    # the session names its licence URL, and so does its DASH manifest (ClearKey's dashif:Laurl)
    assert session.license_uri.endswith(f"/sessions/{session.name.split('/')[1]}/license")
    mpd = ElementTree.fromstring(await fetch(session.manifest_urls.dash_uri))
    for adaptation in mpd.findall("d:Period/d:AdaptationSet", NS):
        clearkey = adaptation.find(f"d:ContentProtection[@schemeIdUri='{CLEARKEY}']", NS)
        assert clearkey is not None
        assert clearkey.findtext("dashif:Laurl", namespaces=NS) == session.license_uri

    video, audio = keys["video"], keys["audio"]
    status, doc, headers = await post(session.license_uri, clearkey_request(video.kid, audio.kid), bearer(md))
    assert status == 200, doc
    assert doc == {
        "keys": [
            {"kty": "oct", "kid": b64url(video.kid), "k": b64url(video.key)},
            {"kty": "oct", "kid": b64url(audio.kid), "k": b64url(audio.key)},
        ],
        "type": "temporary",
    }
    assert headers["Cache-Control"] == "no-store" and headers["Access-Control-Allow-Origin"] == "*"
    # the licence lasts no longer than the session's lease (45 s), nor than the configured 300 s
    assert 0 < int(headers["Marquee-License-Duration"]) <= 45
    assert int(headers["Marquee-License-Expires"]) <= session.expire_time.seconds

    # the keys the licence gave decrypt what the edge serves: the reference decryption gives the clear segments
    granted = {base64.urlsafe_b64decode(k["kid"] + "=="): base64.urlsafe_b64decode(k["k"] + "==") for k in doc["keys"]}
    master = m3u8.loads((await fetch(session.manifest_urls.hls_uri)).decode())
    variant = master.playlists[0].uri
    media = m3u8.loads((await fetch(variant)).decode())
    base = variant.rsplit("/", 1)[0]
    rendition = variant.split("?")[0].rsplit("/", 2)[1]
    init = reference.parse_init(await fetch(f"{base}/{media.segment_map[0].uri}"))
    segment = await fetch(f"{base}/{media.segments[0].uri}")
    clear = (origin / TITLE / rendition / "seg-1.m4s").read_bytes()
    assert segment != clear
    assert reference.decrypt_segment(segment, init, granted) == clear
    wrong = {kid: bytes(16) for kid in granted}
    assert reference.decrypt_segment(segment, init, wrong) != clear

    # the CORS preflight a browser sends first
    async with aiohttp.ClientSession() as s, s.options(session.license_uri) as r:
        assert r.status == 204
        assert "authorization" in r.headers["Access-Control-Allow-Headers"]
        assert "POST" in r.headers["Access-Control-Allow-Methods"]


async def test_a_title_sharing_protected_media_gets_its_medias_keys(playback: Playback) -> None:
    """Keys belong to the media (the encoder's title), which catalog titles share (the demo catalog's do): a session
    of another title on the same media gets the media's keys."""
    await add_title_on_media(playback, "pattern-directors-cut", TITLE)
    md = playback.caller("a1", "p1")
    request = pb.StartPlaybackRequest(title="titles/pattern-directors-cut", profile=PROFILE)
    session = (await playback.stub.StartPlayback(request, metadata=md)).session
    keys = await stored_keys(playback.store)
    status, doc, _ = await post(session.license_uri, clearkey_request(keys["video"].kid), bearer(md))
    assert status == 200, doc
    assert doc["keys"] == [{"kty": "oct", "kid": b64url(keys["video"].kid), "k": b64url(keys["video"].key)}]


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as r:
        return r.status, await r.read(), dict(r.headers)


async def test_raw_keys_for_hls_take_the_same_checks(playback: Playback) -> None:
    """GET /sessions/{session}/keys/{kid}: the key raw (HLS KEYFORMAT "identity"), with every licence check."""
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    keys = await stored_keys(playback.store)
    base = session.license_uri.removesuffix("/license")
    url = f"{base}/keys/{keys['video'].kid.hex()}"
    status, body, headers = await get(url, bearer(md))
    assert status == 200 and body == keys["video"].key and headers["Content-Type"] == "application/octet-stream"
    assert int(headers["Marquee-License-Duration"]) > 0 and headers["Cache-Control"] == "no-store"
    refusals: list[tuple[str, dict[str, str], int, str]] = [
        (url, {}, 401, "INVALID_TOKEN"),
        (url, bearer(playback.caller("a2", "p1")), 403, "LICENSE_SESSION_NOT_YOURS"),
        (f"{base}/keys/{bytes(16).hex()}", bearer(md), 403, "LICENSE_KEY_NOT_IN_TITLE"),
    ]
    for target, auth, want, reason in refusals:
        status, body, _ = await get(target, auth)
        refused(status, json.loads(body), want, reason)
    # a key id that is not 32 hex digits is no key URI at all
    assert (await get(f"{base}/keys/{keys['video'].kid.hex()[:-1]}", bearer(md)))[0] == 404
    # the preflight admits the bearer header from any origin
    async with aiohttp.ClientSession() as s, s.options(url, headers={"Origin": "http://x.example"}) as r:
        assert r.status == 204 and "GET" in r.headers["Access-Control-Allow-Methods"]
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=md)
    status, body, _ = await get(url, bearer(md))
    refused(status, json.loads(body), 410, "LICENSE_SESSION_NOT_LIVE")


async def test_acquire_license_over_grpc(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    keys = await stored_keys(playback.store)
    request = license_pb2.AcquireLicenseRequest(session=session.name, key_ids=[keys["audio"].kid])
    licence = (await playback.license.AcquireLicense(request, metadata=md)).license
    assert licence.session == session.name
    assert [(k.track_type, k.key_id, k.key) for k in licence.keys] == [("audio", keys["audio"].kid, keys["audio"].key)]
    assert 0 < licence.duration.ToSeconds() <= 45
    assert licence.expire_time.ToMicroseconds() <= session.expire_time.ToMicroseconds()
    # refusals carry their reasons
    other = playback.caller("a2", "p1")
    await fails(
        playback.license.AcquireLicense(request, metadata=other),
        grpc.StatusCode.PERMISSION_DENIED,
        "LICENSE_SESSION_NOT_YOURS",
    )
    stranger = license_pb2.AcquireLicenseRequest(session=session.name, key_ids=[bytes(16)])
    await fails(
        playback.license.AcquireLicense(stranger, metadata=md),
        grpc.StatusCode.PERMISSION_DENIED,
        "LICENSE_KEY_NOT_IN_TITLE",
    )
    short = license_pb2.AcquireLicenseRequest(session=session.name, key_ids=[b"\x01" * 15])
    await fails(
        playback.license.AcquireLicense(short, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, "LICENSE_REQUEST_INVALID"
    )
    many = license_pb2.AcquireLicenseRequest(session=session.name, key_ids=[bytes([i]) * 16 for i in range(5)])
    await fails(
        playback.license.AcquireLicense(many, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, "LICENSE_TOO_MANY_KEYS"
    )
    none = license_pb2.AcquireLicenseRequest(session=session.name)
    await fails(
        playback.license.AcquireLicense(none, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, "LICENSE_REQUEST_INVALID"
    )
    unknown = license_pb2.AcquireLicenseRequest(
        session="playbackSessions/0123456789abcdef01234567", key_ids=[bytes(16)]
    )
    await fails(playback.license.AcquireLicense(unknown, metadata=md), grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")
    await fails(playback.license.AcquireLicense(request), grpc.StatusCode.UNAUTHENTICATED)
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=md)
    await fails(
        playback.license.AcquireLicense(request, metadata=md),
        grpc.StatusCode.FAILED_PRECONDITION,
        "LICENSE_SESSION_NOT_LIVE",
    )


async def test_tokens_missing_tampered_expired_or_revoked_get_nothing(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    keys = await stored_keys(playback.store)
    body = clearkey_request(keys["video"].kid)
    status, doc, _ = await post(session.license_uri, body)
    refused(status, doc, 401, "INVALID_TOKEN")
    status, doc, _ = await post(session.license_uri, body, {"Authorization": "Basic dXNlcjpwYXNz"})
    refused(status, doc, 401, "INVALID_TOKEN")
    token = dict(md)["authorization"].removeprefix("Bearer ")
    head, claims, signature = token.split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps({**json.loads(base64.urlsafe_b64decode(claims + "==")), "sub": "a2"}).encode()
    ).rstrip(b"=")
    status, doc, _ = await post(
        session.license_uri, body, {"Authorization": f"Bearer {head}.{forged.decode()}.{signature}"}
    )
    refused(status, doc, 401, "INVALID_TOKEN")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    status, doc, _ = await post(session.license_uri, body, {"Authorization": f"Bearer {head}.{claims}.{flipped}"})
    refused(status, doc, 401, "INVALID_TOKEN")
    expired = playback.tokens.issue("a1", profile_id="p1", plan="premium", now=time.time() - 3600, ttl=60).token
    status, doc, _ = await post(session.license_uri, body, {"Authorization": f"Bearer {expired}"})
    refused(status, doc, 401, "TOKEN_EXPIRED")
    # the account signs out everywhere: its tokens are denied, licences too
    status, _, _ = await post(session.license_uri, body, bearer(md))
    assert status == 200
    await playback.deps.denylist.deny_account("a1", issued_up_to=time.time(), until=time.time() + 3600)
    status, doc, _ = await post(session.license_uri, body, bearer(md))
    refused(status, doc, 401, "TOKEN_REVOKED")


async def test_only_the_sessions_own_live_profile_gets_keys(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    keys = await stored_keys(playback.store)
    body = clearkey_request(keys["video"].kid)
    # another account, and another profile of the same account: never, admins included
    for other in (playback.caller("a2", "p1"), playback.caller("a1", "p2"), playback.admin):
        status, doc, _ = await post(session.license_uri, body, bearer(other))
        refused(status, doc, 403, "LICENSE_SESSION_NOT_YOURS")
    # a session that does not exist
    unknown = session.license_uri.replace(session.name.split("/")[1], "0123456789abcdef01234567")
    status, doc, _ = await post(unknown, body, bearer(md))
    refused(status, doc, 404, "SESSION_NOT_FOUND")
    # a stopped session: gone
    status, _, _ = await post(session.license_uri, body, bearer(md))
    assert status == 200
    await playback.stub.StopPlayback(pb.StopPlaybackRequest(session=session.name), metadata=md)
    status, doc, _ = await post(session.license_uri, body, bearer(md))
    refused(status, doc, 410, "LICENSE_SESSION_NOT_LIVE")


async def test_a_key_of_another_title_is_refused(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    keys = await stored_keys(playback.store)
    other = await ContentKeys(playback.store, MasterKeys(MASTER)).get_or_create("another-title")
    # a key of another title, alone or beside the title's own: nothing is given
    for kids in ((other["video"].kid,), (keys["video"].kid, other["audio"].kid)):
        status, doc, _ = await post(session.license_uri, clearkey_request(*kids), bearer(md))
        refused(status, doc, 403, "LICENSE_KEY_NOT_IN_TITLE")
        assert "keys" not in doc


async def test_entitlement_is_checked_again_at_every_licence(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    keys = await stored_keys(playback.store)
    body = clearkey_request(keys["video"].kid)
    # the title leaves the caller's region (loopback is US) mid-session
    title = catalog_pb2.Title(name=f"titles/{TITLE}", licensed_regions=["JP"])
    mask = field_mask_pb2.FieldMask(paths=["licensed_regions"])
    update = catalog_pb2.UpdateTitleRequest(title=title, update_mask=mask)
    await playback.catalog.UpdateTitle(update, metadata=playback.admin)
    status, doc, _ = await post(session.license_uri, body, bearer(md))
    refused(status, doc, 403, "GEO_BLOCKED")
    # back in the region; a token of the profile now limited below the title's rating (PG)
    title = catalog_pb2.Title(name=f"titles/{TITLE}", licensed_regions=[])
    await playback.catalog.UpdateTitle(
        catalog_pb2.UpdateTitleRequest(title=title, update_mask=mask), metadata=playback.admin
    )
    status, _, _ = await post(session.license_uri, body, bearer(md))
    assert status == 200
    kid = playback.caller("a1", "p1", maturity=common_pb2.MATURITY_RATING_ALL)
    status, doc, _ = await post(session.license_uri, body, bearer(kid))
    refused(status, doc, 403, "MATURITY_RESTRICTED")


async def test_malformed_and_oversized_requests(playback: Playback) -> None:
    md = playback.caller("a1", "p1")
    session = await start(playback, md)
    keys = await stored_keys(playback.store)
    kid = b64url(keys["video"].kid)
    url, auth = session.license_uri, bearer(md)
    bodies: tuple[bytes | dict[str, Any], ...] = (
        b"{not json",
        b"\xff\xfe",
        b"[]",
        {"kids": []},
        {"kids": "abc"},
        {"type": "temporary"},
        {"kids": [kid[:-1] + "*"]},  # not base64url
        {"kids": [kid + "AA"]},  # 17 bytes and more
        {"kids": [kid[:20]]},  # too short
        {"kids": [7]},
        {"kids": [kid], "type": "persistent-license"},
    )
    for body in bodies:
        status, doc, _ = await post(url, body, auth)
        refused(status, doc, 400, "LICENSE_REQUEST_INVALID")
    status, doc, _ = await post(url, {"kids": [kid] * 5}, auth)  # the module's limit is 4
    refused(status, doc, 400, "LICENSE_TOO_MANY_KEYS")
    status, doc, _ = await post(url, b'{"kids": ["' + b"A" * 2000 + b'"]}', auth)  # the limit is 1024 bytes
    refused(status, doc, 413, "LICENSE_REQUEST_INVALID")
    # the well-formed request still works after all that, padded base64url included
    status, doc, _ = await post(url, {"kids": [kid + "=="], "type": "temporary"}, auth)
    assert status == 200 and doc["keys"][0]["kid"] == kid


async def test_licences_are_rate_limited_per_account_and_per_address(
    tmp_path: Path,
    origin: Path,
    playback_config: PlaybackConfig,
    geo_config: GeoConfig,
    store_kind: str,
    request: pytest.FixtureRequest,
) -> None:
    """An account's licences share one budget over both surfaces, and the HTTP endpoint counts every request from
    an address before it looks at the token (bad tokens too): 429 / RESOURCE_EXHAUSTED, RATE_LIMITED, with the
    wait (Retry-After, RetryInfo)."""
    limits = LicenseConfig(per_account=Rate(limit=3, period=3600), per_address=Rate(limit=8, period=3600))
    config = playback_config.model_copy(update={"license": limits})
    async with protected_stack(tmp_path, origin, config, geo_config, store_kind, request) as p:
        md = p.caller("a1", "p1")
        session = await start(p, md)
        kid = (await stored_keys(p.store))["video"].kid
        for _ in range(2):
            status, _, _ = await post(session.license_uri, clearkey_request(kid), bearer(md))
            assert status == 200
        grpc_request = license_pb2.AcquireLicenseRequest(session=session.name, key_ids=[kid])
        await p.license.AcquireLicense(grpc_request, metadata=md)  # the account's third
        status, doc, headers = await post(session.license_uri, clearkey_request(kid), bearer(md))
        refused(status, doc, 429, "RATE_LIMITED")
        assert 1 <= int(headers["Retry-After"]) <= 3600
        refusal = p.license.AcquireLicense(grpc_request, metadata=md)
        await fails(refusal, grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
        # another account has its own budget (the address has now made 4 requests of its 8)
        other = p.caller("a2", "p1")
        other_session = await start(p, other, "accounts/a2/profiles/p1")
        status, _, _ = await post(other_session.license_uri, clearkey_request(kid), bearer(other))
        assert status == 200
        # requests without a valid token still spend the address's budget, and then nobody there gets a licence
        for _ in range(4):
            status, doc, _ = await post(other_session.license_uri, clearkey_request(kid))
            refused(status, doc, 401, "INVALID_TOKEN")
        status, doc, headers = await post(other_session.license_uri, clearkey_request(kid), bearer(other))
        refused(status, doc, 429, "RATE_LIMITED")
        assert "Retry-After" in headers


async def test_the_key_service_answers_services_only(playback: Playback) -> None:
    """ContentKeyService on the encoder: a service credential reads the keys; a viewer or an operator's admin
    token does not; a title without keys is NOT_FOUND (never made on read)."""
    keys = await stored_keys(playback.store)
    async with grpc.aio.insecure_channel(playback.encoder) as channel:
        stub = content_keys_pb2_grpc.ContentKeyServiceStub(channel)
        request = content_keys_pb2.GetContentKeysRequest(name=f"titles/{TITLE}/contentKeys")
        service = ServiceToken(playback.tokens, "svc-test")()
        reply = await stub.GetContentKeys(request, metadata=service)
        got = {k.track_type: (k.key_id, k.key) for k in reply.content_keys.keys}
        assert got == {t: (k.kid, k.key) for t, k in keys.items()}
        for who in (playback.caller("a1", "p1"), playback.admin):
            await fails(stub.GetContentKeys(request, metadata=who), grpc.StatusCode.PERMISSION_DENIED)
        await fails(stub.GetContentKeys(request), grpc.StatusCode.UNAUTHENTICATED)
        missing = content_keys_pb2.GetContentKeysRequest(name="titles/never-protected/contentKeys")
        await fails(stub.GetContentKeys(missing, metadata=service), grpc.StatusCode.NOT_FOUND, "CONTENT_KEYS_NOT_FOUND")
        assert await ContentKeys(playback.store, MasterKeys(MASTER)).get("never-protected") == {}
        bad = content_keys_pb2.GetContentKeysRequest(name="titles/x")
        err = await fails(stub.GetContentKeys(bad, metadata=service), grpc.StatusCode.INVALID_ARGUMENT)
        assert "contentKeys" in err


async def test_without_a_key_service_licences_are_refused_not_crashed(
    tmp_path: Path, origin: Path, playback_config: PlaybackConfig, request: pytest.FixtureRequest
) -> None:
    """Playback run without an encoder address (``marquee up --only playback ...``): a clear title's session has no
    licence URL and its manifest names none; a licence asked anyway is refused (503 CONTENT_KEY_UNAVAILABLE)."""
    store = await open_test_store("sqlite", tmp_path, request, "all")
    try:
        async with playback_stack(tmp_path, origin, playback_config, store) as p:
            md = p.caller("a1", "p1")
            session = await start(p, md)
            assert session.license_uri == ""
            assert b"Laurl" not in await fetch(session.manifest_urls.dash_uri)
            url = session.manifest_urls.dash_uri.split("?")[0].replace("manifest.mpd", "license")
            status, doc, _ = await post(url, clearkey_request(bytes(16)), bearer(md))
            refused(status, doc, 503, "CONTENT_KEY_UNAVAILABLE")
            request_ = license_pb2.AcquireLicenseRequest(session=session.name, key_ids=[bytes(16)])
            refusal = p.license.AcquireLicense(request_, metadata=md)
            await fails(refusal, grpc.StatusCode.FAILED_PRECONDITION, "CONTENT_KEY_UNAVAILABLE")
    finally:
        await store.close()
