"""Offline downloads in the web player, in headless Chromium against the real platform: the browser (registered as
a device of the account when the profile was chosen) downloads a title (DownloadService and Shaka Player's offline
storage), plays it with the network cut, from the start and after a seek; past its licence's end it refuses to
play; once its device is removed from the account, the next check-in revokes it and it refuses to play."""

from __future__ import annotations

from pathlib import Path

import grpc

from marquee.v1 import accounts_pb2, accounts_pb2_grpc
from tests.e2e.browser import Browser
from tests.e2e.harness import Platform
from tests.e2e.viewer import sign_in

VIDEO = "document.querySelector('[data-testid=offline-video]')"
# the licence's end passes on this browser (as the clock would move past it): every stored record's expiry moved
# to a second ago
EXPIRE_NOW = """(() => {
  const records = JSON.parse(localStorage.getItem('marquee.downloads'));
  for (const r of records) r.expireMs = Date.now() - 1000;
  localStorage.setItem('marquee.downloads', JSON.stringify(records));
  return records.length;
})()"""


def playing_past(page: Browser, seconds: float) -> None:
    page.wait_for_function(
        f"(() => {{ const v = {VIDEO}; return !v.paused && !v.seeking && v.currentTime > {seconds}; }})()",
        timeout=30_000,
    )


def test_a_download_plays_offline_expires_and_is_revoked_with_its_device(
    page: Browser, platform: Platform, screenshots: Path
) -> None:
    title = platform.titles_playing()[0]
    title_id = title.name.split("/")[1]
    sign_in(page, platform, "Alex")
    device = page.evaluate("JSON.parse(localStorage.getItem('marquee.session')).device")
    assert device, "the browser is a registered device"

    page.goto(f"{platform.url}/title/{title_id}")
    page.click("[data-testid=download-button]")
    page.wait_for("[data-testid=download-done]", timeout=120_000)  # the whole title, into IndexedDB
    page.click("[data-testid=download-done]")
    item = f"[data-testid=download-item][data-title='{title_id}']"
    page.wait_for(item)
    page.wait_for("[data-testid=downloads][data-checked=true]")  # checked in online: still active
    assert page.text(f"{item} [data-testid=download-state]").startswith("Until ")
    assert page.text(f"{item} [data-testid=download-size]").endswith("MB")
    page.screenshot(screenshots / "downloads.png")

    # the network is cut: the download plays from the start, and after a seek
    page.set_offline(True)
    try:
        assert page.evaluate("navigator.onLine") is False
        page.click(f"{item} [data-testid=offline-play]")
        playing_past(page, 2)
        page.evaluate(f"{VIDEO}.currentTime = 20")
        playing_past(page, 22)
        page.screenshot(screenshots / "downloads-offline.png")

        # past the licence's end it refuses to play, still offline
        assert page.evaluate(EXPIRE_NOW) == 1
        page.click(f"{item} [data-testid=offline-play]")
        page.wait_for("[data-testid=offline-message]:has-text('expired')")
    finally:
        page.set_offline(False)

    # the device is removed from the account; back online, the screen's check-in revokes the download
    with grpc.insecure_channel(platform.address("accounts")) as channel:
        accounts = accounts_pb2_grpc.AccountServiceStub(channel)
        accounts.DeleteDevice(accounts_pb2.DeleteDeviceRequest(name=device), metadata=platform.admin, timeout=10)
    page.goto(f"{platform.url}/downloads")
    page.wait_for("[data-testid=downloads][data-checked=true]")
    assert page.text(f"{item} [data-testid=download-state]") == "Revoked (DEVICE_REMOVED)"
    page.click(f"{item} [data-testid=offline-play]")
    page.wait_for("[data-testid=offline-message]:has-text('revoked')")
    # deleting it removes the stored title
    page.click(f"{item} [data-testid=offline-delete]")
    page.wait_for("[data-testid=no-downloads]")
    assert page.evaluate("JSON.parse(localStorage.getItem('marquee.downloads')).length") == 0
