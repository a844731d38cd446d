"""The gateway under `marquee up` (accounts, catalog and encoder only): it finds the backends that started,
prints its URL, and carries real RPCs in both modes - sign-up and sign-in, the access token through to the
services that check it, catalog search, and a server stream (WatchEncodingJob)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from marquee.v1 import accounts_pb2, catalog_pb2, common_pb2, encoding_pb2
from services.common.config import load_config
from services.platform.admin import admin_metadata
from services.platform.plugins import discover
from tests.gateway import grpcweb
from tests.platform.test_up import _start, _stop

PLATFORM_ENV = {
    "MARQUEE_SERVICES__ENCODER__DEMO__ENABLED": "false",
    "MARQUEE_SERVICES__CATALOG__DEMO__ENABLED": "false",
}
ACCOUNTS = "/marquee.v1.AccountService"
CATALOG = "/marquee.v1.CatalogService"
ENCODING = "/marquee.v1.EncodingService"


@dataclass
class Platform:
    endpoints: dict[str, Any]
    url: str
    admin: dict[str, str]
    data_dir: Path


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp("gateway-up")
    proc, endpoints = _start(tmp, PLATFORM_ENV, only=["accounts", "catalog", "encoder", "gateway"])
    try:
        url = endpoints["gateway"][0]["address"].rstrip("/")
        admin = dict(admin_metadata(load_config(data_dir=tmp / "data")))
        yield Platform(endpoints, url, admin, tmp / "data")
    finally:
        code, out, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert re.search(rf"player \(open this\) +{re.escape(url)}/", out), out
    assert "Traceback" not in err


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _rpc(
    session: aiohttp.ClientSession,
    p: Platform,
    path: str,
    request: Any,
    *,
    text: bool = False,
    headers: dict[str, str] | None = None,
) -> grpcweb.Reply:
    return await grpcweb.call(session, p.url, path, [request.SerializeToString()], text=text, headers=headers)


def _ok(reply: grpcweb.Reply) -> grpcweb.Reply:
    assert reply.code == grpc.StatusCode.OK, (reply.code, reply.message)
    return reply


def test_the_gateway_is_the_url_to_open(platform: Platform) -> None:
    gateway = platform.endpoints["gateway"]
    assert gateway == [{"label": "player (open this)", "address": f"{platform.url}/", "kind": "http"}]
    with urllib.request.urlopen(f"{platform.url}/healthz", timeout=5) as reply:
        assert reply.read() == b"ok\n"
    with urllib.request.urlopen(f"{platform.url}/", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_sign_up_sign_in_and_the_token_passes_through(
    platform: Platform, session: aiohttp.ClientSession, text: bool
) -> None:
    email = f"gw-{'text' if text else 'binary'}@example.com"
    signup = accounts_pb2.SignUpRequest(email=email, password="long enough pass")
    up = accounts_pb2.SignUpResponse.FromString(
        _ok(await _rpc(session, platform, f"{ACCOUNTS}/SignUp", signup, text=text)).messages[0]
    )
    assert up.account.email == email
    signin = accounts_pb2.SignInRequest(email=email, password="long enough pass")
    reply = _ok(await _rpc(session, platform, f"{ACCOUNTS}/SignIn", signin, text=text))
    signed = accounts_pb2.SignInResponse.FromString(reply.messages[0])
    assert reply.trailer("x-request-id")  # the backend's request id comes back in the trailers frame
    token = signed.tokens.access_token
    get = accounts_pb2.GetAccountRequest(name=signed.account.name)
    got = _ok(
        await _rpc(
            session, platform, f"{ACCOUNTS}/GetAccount", get, text=text, headers={"authorization": f"Bearer {token}"}
        )
    )
    assert accounts_pb2.GetAccountResponse.FromString(got.messages[0]).account.email == email
    # without the token, the service refuses: the gateway adds no credentials of its own
    missing = await _rpc(session, platform, f"{ACCOUNTS}/GetAccount", get, text=text)
    assert missing.code == grpc.StatusCode.UNAUTHENTICATED and missing.trailers_only
    assert "missing access token" in missing.message
    # someone else's account: PERMISSION_DENIED from the service, passed through with its details
    other = accounts_pb2.GetAccountRequest(name="accounts/someone-else")
    denied = await _rpc(
        session, platform, f"{ACCOUNTS}/GetAccount", other, text=text, headers={"authorization": f"Bearer {token}"}
    )
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED, denied.message
    assert denied.status_details() is not None


async def test_catalog_search_through_the_gateway(platform: Platform, session: aiohttp.ClientSession) -> None:
    title = catalog_pb2.Title(
        display_name="Gateway Odyssey",
        type=catalog_pb2.TITLE_TYPE_MOVIE,
        maturity_rating=common_pb2.MATURITY_RATING_PG,
        genres=["Adventure"],
    )
    create = catalog_pb2.CreateTitleRequest(title=title, title_id="gateway-odyssey")
    _ok(await _rpc(session, platform, f"{CATALOG}/CreateTitle", create, headers=platform.admin))
    search = catalog_pb2.SearchTitlesRequest(query="gateway odysey")  # a typo: search is typo-tolerant
    unauthenticated = await _rpc(session, platform, f"{CATALOG}/SearchTitles", search, text=True)
    assert unauthenticated.code == grpc.StatusCode.UNAUTHENTICATED
    deadline = time.monotonic() + 10
    while True:
        reply = _ok(await _rpc(session, platform, f"{CATALOG}/SearchTitles", search, text=True, headers=platform.admin))
        found = catalog_pb2.SearchTitlesResponse.FromString(reply.messages[0])
        if [r.title.name for r in found.results] == ["titles/gateway-odyssey"]:
            break
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)


async def test_server_streaming_watch_encoding_job(platform: Platform, session: aiohttp.ClientSession) -> None:
    job = encoding_pb2.EncodingJob(title="titles/no-such-master", source_uri=str(platform.data_dir / "missing.mp4"))
    create = encoding_pb2.CreateEncodingJobRequest(job=job)
    created = encoding_pb2.CreateEncodingJobResponse.FromString(
        _ok(await _rpc(session, platform, f"{ENCODING}/CreateEncodingJob", create, headers=platform.admin)).messages[0]
    )
    watch = encoding_pb2.WatchEncodingJobRequest(name=created.job.name)
    for text in (False, True):
        reply = _ok(
            await _rpc(
                session,
                platform,
                f"{ENCODING}/WatchEncodingJob",
                watch,
                text=text,
                headers={**platform.admin, "grpc-timeout": "60S"},
            )
        )
        states = [encoding_pb2.WatchEncodingJobResponse.FromString(m).job.state for m in reply.messages]
        assert states and states[-1] == encoding_pb2.ENCODING_JOB_STATE_FAILED, states
        assert not reply.trailers_only and reply.trailer_frame is not None
    # without the admin token the stream is refused before any message
    refused = await _rpc(session, platform, f"{ENCODING}/WatchEncodingJob", watch)
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED and refused.messages == []


async def test_services_that_did_not_start_are_not_routed(platform: Platform, session: aiohttp.ClientSession) -> None:
    reply = await grpcweb.call(session, platform.url, "/marquee.v1.PlaybackService/StartPlayback", [b""])
    assert reply.code == grpc.StatusCode.UNIMPLEMENTED
    assert "no route for service 'marquee.v1.PlaybackService'" in reply.message


async def test_gateway_metrics_on_the_platform_endpoint(platform: Platform, session: aiohttp.ClientSession) -> None:
    wrong = accounts_pb2.SignInRequest(email="nobody@example.com", password="not the password")
    assert (await _rpc(session, platform, f"{ACCOUNTS}/SignIn", wrong)).code == grpc.StatusCode.UNAUTHENTICATED
    async with session.get(platform.endpoints["platform"][0]["address"]) as reply:
        body = await reply.text()
    samples = {
        (s.labels["grpc_method"], s.labels["grpc_code"], s.labels["mode"]): s.value
        for family in text_string_to_metric_families(body)
        if family.name == "marquee_gateway_requests"
        for s in family.samples
        if s.name == "marquee_gateway_requests_total" and s.labels["grpc_service"] == "marquee.v1.AccountService"
    }
    assert samples[("SignIn", "UNAUTHENTICATED", "binary")] == 1.0


def test_the_gateway_starts_after_every_backend() -> None:
    plugins = discover()
    gateway = next(p for p in plugins if p.name == "gateway")
    assert gateway.default_port == 8080
    assert all(p.order < gateway.order for p in plugins if p.name != "gateway")
