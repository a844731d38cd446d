"""Offline downloads (DownloadService, services/playback/downloads.py) on the real stack over loopback: accounts
(sign-up, devices, device-bound tokens from SelectProfile), catalog, steering, the encoder holding the title's keys,
playback and an edge, the title protected.

Happy path: a download for the token's device gives the title's stored keys (a persistent licence with the plan's
expiry and play window) and signed manifests capped at the plan's height; starting offline playback shortens the
licence to the play window once; a check-in renews it; listing and release. Limits: per device and per account, by
plan, exact under concurrent requests. Revocation: a removed device's download at its next check-in, sign-out
everywhere (the accounts.revoked follower), the title leaving the caller's region; an expired licence refuses to
play until renewed. Hostile: no device in the token, another account's or profile's download, another device of
the same account, malformed names, negative heights."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import field_mask_pb2

from marquee.v1 import accounts_pb2, catalog_pb2, common_pb2
from marquee.v1 import download_pb2 as dl
from services.common.errors import error_info
from tests.edge.conftest import TITLE
from tests.playback.conftest import Playback, add_title_on_media
from tests.playback.test_license import (
    protected_playback,  # noqa: F401 - the fixture 'playback'
    stored_keys,
)
from tests.playback.test_playback import fails

PASSWORD = "correct horse battery"
FULL = grpc.StatusCode.RESOURCE_EXHAUSTED
ACTIVE, REVOKED, EXPIRED = dl.Download.STATE_ACTIVE, dl.Download.STATE_REVOKED, dl.Download.STATE_EXPIRED


@pytest.fixture
def with_accounts() -> bool:
    return True  # downloads check the device with the accounts service


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Viewer:
    account: str  # accounts/{account}
    profile: str  # accounts/{account}/profiles/{profile}
    md: Any  # the account's token (no profile, no device)
    refresh_token: str

    def downloads(self, download_id: str = "") -> str:
        return f"{self.profile}/downloads/{download_id}" if download_id else self.profile


async def sign_up(p: Playback, email: str, plan: str = "offline") -> Viewer:
    up = await p.accounts.SignUp(accounts_pb2.SignUpRequest(email=email, password=PASSWORD, plan=f"plans/{plan}"))
    return Viewer(up.account.name, up.profile.name, bearer(up.tokens.access_token), up.tokens.refresh_token)


async def device(p: Playback, viewer: Viewer, name: str = "train tablet") -> tuple[str, Any]:
    """A registered device and a token of the viewer's profile bound to it."""
    registered = await p.accounts.RegisterDevice(
        accounts_pb2.RegisterDeviceRequest(
            parent=viewer.account,
            device=accounts_pb2.Device(display_name=name, type=common_pb2.DEVICE_TYPE_TABLET),
        ),
        metadata=viewer.md,
    )
    selected = await p.accounts.SelectProfile(
        accounts_pb2.SelectProfileRequest(profile=viewer.profile, device=registered.device.name), metadata=viewer.md
    )
    return registered.device.name, bearer(selected.tokens.access_token)


async def create(
    p: Playback, viewer: Viewer, md: Any, max_height: int = 0, title: str = TITLE
) -> dl.CreateDownloadResponse:
    request = dl.CreateDownloadRequest(parent=viewer.profile, title=f"titles/{title}", max_height=max_height)
    response: dl.CreateDownloadResponse = await p.download.CreateDownload(request, metadata=md)
    return response


def get(p: Playback, name: str, md: Any) -> Any:
    return p.download.GetDownload(dl.GetDownloadRequest(name=name), metadata=md)


def renew(p: Playback, name: str, md: Any) -> Any:
    return p.download.RenewDownload(dl.RenewDownloadRequest(name=name), metadata=md)


def play(p: Playback, name: str, md: Any) -> Any:
    return p.download.StartOfflinePlayback(dl.StartOfflinePlaybackRequest(name=name), metadata=md)


async def until_revoked(p: Playback, name: str, md: Any) -> dl.Download:
    """The download once the follower of accounts.revoked has revoked it (it works on its own time: this waits
    for what the service reports, bounded by the test's timeout)."""
    while True:
        got: dl.Download = (await get(p, name, md)).download
        if got.state == REVOKED:
            return got
        await asyncio.sleep(0.05)


async def fetch(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def revoked_with(call: Any, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    info = error_info(err.value)
    assert info is not None and info.reason == "DOWNLOAD_REVOKED" and info.metadata["revoke_reason"] == reason, info


async def test_a_download_carries_the_titles_keys_terms_and_manifests(playback: Playback) -> None:
    viewer = await sign_up(playback, "ada@example.com")
    device_name, md = await device(playback, viewer)
    before = time.time()
    made = await create(playback, viewer, md, max_height=480)
    d, licence = made.download, made.license
    assert d.state == ACTIVE and d.device == device_name and d.title == f"titles/{TITLE}"
    assert d.name.startswith(f"{viewer.profile}/downloads/")
    assert d.max_resolution_height == 480  # the device's request, under the plan's 720
    keys = await stored_keys(playback.store)
    assert {(k.track_type, k.key_id, k.key) for k in licence.keys} == {(t, k.kid, k.key) for t, k in keys.items()}
    assert licence.download == d.name and licence.expire_time == d.expire_time
    assert before + 29 * 86400 < d.expire_time.seconds <= time.time() + 30 * 86400  # the plan's 30 days
    assert licence.play_window.ToSeconds() == 3600  # the plan's offline_play_hours
    # the manifests are signed for the download and capped at its height
    status, mpd = await fetch(d.manifest_urls.dash_uri)
    assert status == 200 and 'height="720"' not in mpd and "ContentProtection" in mpd
    status, _ = await fetch(d.manifest_urls.hls_uri)
    assert status == 200
    forged = d.manifest_urls.dash_uri.replace("token=", "token=x")
    assert (await fetch(forged))[0] == 403

    # offline playback starts: the licence now ends within the play window, once
    started = (await play(playback, d.name, md)).download
    assert started.play_start_time.seconds >= int(before)
    assert started.expire_time.ToSeconds() <= started.play_start_time.ToSeconds() + 3600 + 1
    again = (await play(playback, d.name, md)).download
    assert again.play_start_time == started.play_start_time and again.expire_time == started.expire_time

    # a check-in renews the licence (a new play window starts with the next offline play)
    renewed = await renew(playback, d.name, md)
    assert renewed.download.expire_time.seconds > started.expire_time.seconds
    assert not renewed.download.HasField("play_start_time")
    assert len(renewed.license.keys) == len(keys)

    listed = await playback.download.ListDownloads(dl.ListDownloadsRequest(parent=viewer.profile), metadata=md)
    assert [x.name for x in listed.downloads] == [d.name]
    got = await get(playback, d.name, md)
    assert got.download.state == ACTIVE and got.download.manifest_urls.dash_uri

    await playback.download.ReleaseDownload(dl.ReleaseDownloadRequest(name=d.name), metadata=md)
    await fails(
        get(playback, d.name, md),
        grpc.StatusCode.NOT_FOUND,
        "DOWNLOAD_NOT_FOUND",
    )
    assert (await fetch(d.manifest_urls.dash_uri))[0] == 404
    listed = await playback.download.ListDownloads(dl.ListDownloadsRequest(parent=viewer.profile), metadata=md)
    assert list(listed.downloads) == []


async def test_a_title_sharing_protected_media_downloads_with_its_medias_keys(playback: Playback) -> None:
    """Keys belong to the media (the encoder's title), which catalog titles share."""
    await add_title_on_media(playback, "pattern-directors-cut", TITLE)
    viewer = await sign_up(playback, "lin@example.com")
    _, md = await device(playback, viewer)
    made = await create(playback, viewer, md, title="pattern-directors-cut")
    keys = await stored_keys(playback.store)
    assert {(k.track_type, k.key_id, k.key) for k in made.license.keys} == {(t, k.kid, k.key) for t, k in keys.items()}


async def test_limits_per_device_and_per_account_hold_under_racing_requests(playback: Playback) -> None:
    """The offline plan: 2 per device, 3 per account."""
    viewer = await sign_up(playback, "bo@example.com")
    _, tablet = await device(playback, viewer, "tablet")
    _, phone = await device(playback, viewer, "phone")
    # three at once from one device: two are made, the third is refused with the limit in the message
    results = await asyncio.gather(*(create(playback, viewer, tablet) for _ in range(3)), return_exceptions=True)
    made = [r for r in results if isinstance(r, dl.CreateDownloadResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(made) <= 2 and len(made) + len(refused) == 3, results
    for refusal in refused:
        assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.details()
        info = error_info(refusal)
        assert info is not None and info.reason == "DOWNLOAD_LIMIT_REACHED", info
    while len(made) < 2:  # racers may all back off: the limit is never passed, and the next request is served
        made.append(await create(playback, viewer, tablet))
    message = await fails(create(playback, viewer, tablet), FULL, "DOWNLOAD_LIMIT_REACHED")
    assert "2 downloads at once on one device" in message
    # the account's third on another device, then the account is full
    await create(playback, viewer, phone)
    message = await fails(create(playback, viewer, phone), FULL, "DOWNLOAD_LIMIT_REACHED")
    assert "3 downloads at once on an account" in message
    # releasing one frees its place
    await playback.download.ReleaseDownload(dl.ReleaseDownloadRequest(name=made[0].download.name), metadata=tablet)
    await create(playback, viewer, phone)


async def test_hostile_callers_get_typed_refusals(playback: Playback) -> None:
    viewer = await sign_up(playback, "cy@example.com")
    _, md = await device(playback, viewer)
    _, other_device = await device(playback, viewer, "second screen")
    mine = (await create(playback, viewer, md)).download
    stranger = await sign_up(playback, "eve@example.com")
    _, stranger_md = await device(playback, stranger)

    # a token without a device (the account's, or a profile's selected without one)
    await fails(create(playback, viewer, viewer.md), grpc.StatusCode.PERMISSION_DENIED)
    plain = await playback.accounts.SelectProfile(
        accounts_pb2.SelectProfileRequest(profile=viewer.profile), metadata=viewer.md
    )
    no_device = bearer(plain.tokens.access_token)
    await fails(create(playback, viewer, no_device), grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_REQUIRED")
    # another account: its profile as parent, its download by name
    await fails(create(playback, viewer, stranger_md), grpc.StatusCode.PERMISSION_DENIED)
    for call in (
        get(playback, mine.name, stranger_md),
        renew(playback, mine.name, stranger_md),
        playback.download.ReleaseDownload(dl.ReleaseDownloadRequest(name=mine.name), metadata=stranger_md),
        playback.download.ListDownloads(dl.ListDownloadsRequest(parent=viewer.profile), metadata=stranger_md),
    ):
        await fails(call, grpc.StatusCode.PERMISSION_DENIED)
    # another device of the same account may see it, but not renew or play it
    request = dl.RenewDownloadRequest(name=mine.name)
    await fails(
        playback.download.RenewDownload(request, metadata=other_device),
        grpc.StatusCode.PERMISSION_DENIED,
        "DOWNLOAD_OTHER_DEVICE",
    )
    await fails(
        play(playback, mine.name, other_device),
        grpc.StatusCode.PERMISSION_DENIED,
        "DOWNLOAD_OTHER_DEVICE",
    )
    # malformed input
    for name in ("", "downloads/x", f"{viewer.profile}/downloads/", f"{viewer.profile}/downloads/a/b"):
        await fails(get(playback, name, md), grpc.StatusCode.INVALID_ARGUMENT)
    unknown = f"{viewer.profile}/downloads/0123456789abcdef01234567"
    await fails(get(playback, unknown, md), grpc.StatusCode.NOT_FOUND, "DOWNLOAD_NOT_FOUND")
    await fails(create(playback, viewer, md, max_height=-1), grpc.StatusCode.INVALID_ARGUMENT)
    bad_title = dl.CreateDownloadRequest(parent=viewer.profile, title="films/x")
    await fails(playback.download.CreateDownload(bad_title, metadata=md), grpc.StatusCode.INVALID_ARGUMENT)
    missing = dl.CreateDownloadRequest(parent=viewer.profile, title="titles/no-such-title")
    await fails(playback.download.CreateDownload(missing, metadata=md), grpc.StatusCode.NOT_FOUND, "TITLE_NOT_FOUND")
    await fails(playback.download.CreateDownload(missing), grpc.StatusCode.UNAUTHENTICATED)


async def test_a_removed_devices_download_is_revoked_at_its_next_check_in(playback: Playback) -> None:
    viewer = await sign_up(playback, "di@example.com")
    device_name, md = await device(playback, viewer)
    made = (await create(playback, viewer, md)).download
    await playback.accounts.DeleteDevice(accounts_pb2.DeleteDeviceRequest(name=device_name), metadata=viewer.md)
    # the device's token still verifies, but the device is gone: no new download, and the check-in revokes
    await fails(create(playback, viewer, md), grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_NOT_REGISTERED")
    await revoked_with(renew(playback, made.name, md), "DEVICE_REMOVED")
    got = (await get(playback, made.name, md)).download
    assert got.state == REVOKED and got.revoke_reason == "DEVICE_REMOVED" and not got.manifest_urls.dash_uri
    assert (await fetch(made.manifest_urls.dash_uri))[0] == 410
    await revoked_with(play(playback, made.name, md), "DEVICE_REMOVED")


async def test_signing_out_everywhere_revokes_every_download(playback: Playback) -> None:
    viewer = await sign_up(playback, "fa@example.com")
    _, md = await device(playback, viewer)
    made = (await create(playback, viewer, md)).download
    await playback.accounts.RevokeAllSessions(
        accounts_pb2.RevokeAllSessionsRequest(account=viewer.account), metadata=viewer.md
    )
    # the follower of accounts.revoked revokes it (on its own time: wait for what the service reports)
    signed_in = await playback.accounts.SignIn(accounts_pb2.SignInRequest(email="fa@example.com", password=PASSWORD))
    md2 = bearer(
        (
            await playback.accounts.SelectProfile(
                accounts_pb2.SelectProfileRequest(profile=viewer.profile, device=made.device),
                metadata=bearer(signed_in.tokens.access_token),
            )
        ).tokens.access_token
    )
    got = await until_revoked(playback, made.name, md2)
    assert got.revoke_reason == "SIGNED_OUT"
    await revoked_with(renew(playback, made.name, md2), "SIGNED_OUT")
    # the revoked download no longer counts: a new one is made on the same device
    assert (await create(playback, viewer, md2)).download.state == ACTIVE


async def test_an_expired_licence_refuses_to_play_until_renewed(playback: Playback) -> None:
    """The brief plan's licences last 2 s: past the expiry the service reports, offline playback is refused, the
    manifests are gone, and a check-in renews it."""
    viewer = await sign_up(playback, "ha@example.com", plan="brief")
    _, md = await device(playback, viewer)
    made = (await create(playback, viewer, md)).download
    await asyncio.sleep(max(0.0, made.expire_time.ToMicroseconds() / 1e6 - time.time()) + 0.01)  # its reported expiry
    await fails(play(playback, made.name, md), grpc.StatusCode.FAILED_PRECONDITION, "DOWNLOAD_EXPIRED")
    got = (await get(playback, made.name, md)).download
    assert got.state == EXPIRED and not got.manifest_urls.dash_uri
    assert (await fetch(made.manifest_urls.dash_uri))[0] == 410
    renewed = (await renew(playback, made.name, md)).download
    assert renewed.state in (ACTIVE, EXPIRED)  # (its new two seconds may be over already on a busy machine)
    assert renewed.expire_time.ToMicroseconds() > made.expire_time.ToMicroseconds()


async def test_a_lapsed_download_of_a_revoked_session_is_revoked_at_check_in(playback: Playback) -> None:
    """A download whose licence lapsed gave its place to another (the brief plan holds one): signing out
    everywhere revokes the active one at once and the lapsed one at its next check-in."""
    viewer = await sign_up(playback, "jo@example.com", plan="brief")
    device_name, md = await device(playback, viewer)
    lapsed = (await create(playback, viewer, md)).download
    await asyncio.sleep(max(0.0, lapsed.expire_time.ToMicroseconds() / 1e6 - time.time()) + 0.01)
    current = (await create(playback, viewer, md)).download  # takes the lapsed one's place
    await playback.accounts.RevokeAllSessions(
        accounts_pb2.RevokeAllSessionsRequest(account=viewer.account), metadata=viewer.md
    )
    signed_in = await playback.accounts.SignIn(accounts_pb2.SignInRequest(email="jo@example.com", password=PASSWORD))
    selected = await playback.accounts.SelectProfile(
        accounts_pb2.SelectProfileRequest(profile=viewer.profile, device=device_name),
        metadata=bearer(signed_in.tokens.access_token),
    )
    md2 = bearer(selected.tokens.access_token)
    await until_revoked(playback, current.name, md2)
    await revoked_with(renew(playback, lapsed.name, md2), "SIGNED_OUT")
    assert (await get(playback, lapsed.name, md2)).download.revoke_reason == "SIGNED_OUT"


async def test_the_title_leaving_the_region_revokes_at_check_in(playback: Playback) -> None:
    viewer = await sign_up(playback, "gu@example.com")
    _, md = await device(playback, viewer)
    made = (await create(playback, viewer, md)).download
    title = catalog_pb2.Title(name=f"titles/{TITLE}", licensed_regions=["JP"])  # loopback is US
    mask = field_mask_pb2.FieldMask(paths=["licensed_regions"])
    update = catalog_pb2.UpdateTitleRequest(title=title, update_mask=mask)
    await playback.catalog.UpdateTitle(update, metadata=playback.admin)
    await revoked_with(renew(playback, made.name, md), "GEO_BLOCKED")
    await fails(create(playback, viewer, md), grpc.StatusCode.FAILED_PRECONDITION, "GEO_BLOCKED")
