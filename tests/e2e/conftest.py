"""Browser tests: the real platform (`marquee up` with its demo content and edge processes) and headless
Chromium driving the web player the gateway serves. Screenshots of the main screens go to build/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import Browser, missing_requirements
from tests.e2e.harness import ROOT, Platform, start_platform

SCREENSHOTS = ROOT / "build" / "screenshots"

# Watches the <video> element independently of the app: "waiting" events, and the longest time currentTime stood
# still while the video was meant to be playing (not paused, seeking or ended).
MONITOR = """(() => {
  const v = document.querySelector('[data-testid=video]');
  const m = window.__monitor = {waiting: 0, frozenMs: 0, last: v.currentTime, lastMove: performance.now()};
  v.addEventListener('waiting', () => { if (!v.seeking) m.waiting++; });
  window.setInterval(() => {
    const now = performance.now();
    if (v.paused || v.seeking || v.ended || v.currentTime !== m.last) {
      m.last = v.currentTime; m.lastMove = now; return;
    }
    m.frozenMs = Math.max(m.frozenMs, now - m.lastMove);
  }, 50);
  return true;
})()"""


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    missing = missing_requirements()
    if missing:
        pytest.fail(f"the browser tests cannot run: {missing}")
    running = start_platform(tmp_path_factory.mktemp("e2e"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def page(browser: Browser, platform: Platform) -> Iterator[Browser]:
    """A fresh page (no stored sign-in) with both edges up and unthrottled."""
    platform.ensure_edges()
    browser.new_page()
    yield browser
    # Leaving the page ends its playback session (the player stops on pagehide), freeing the stream slot.
    browser.goto("about:blank")


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the web player: {SCREENSHOTS}")
    return SCREENSHOTS


def sign_in(page: Browser, platform: Platform, profile: str = "Alex", shots: Path | None = None) -> None:
    """Signs in with the demo account through the UI and picks ``profile``; ends on the home screen."""
    email, password = platform.demo_sign_in()
    page.goto(platform.url + "/")
    page.wait_for("[data-testid=signin-email]")
    if shots:
        page.screenshot(shots / "1-sign-in.png")
    page.fill("[data-testid=signin-email]", email)
    page.fill("[data-testid=signin-password]", password)
    page.click("[data-testid=signin-submit]")
    page.wait_for(f"[data-testid=profile-button]:has-text('{profile}')")
    if shots:
        page.screenshot(shots / "2-profiles.png")
    page.click(f"[data-testid=profile-button]:has-text('{profile}')")
    page.wait_for("[data-testid=home]")


def watch(page: Browser, platform: Platform, title_id: str) -> dict[str, str]:
    """Opens the player on a title (from its page, as a viewer does) and waits for the first frame."""
    page.goto(f"{platform.url}/title/{title_id}")
    page.click("[data-testid=play-button]:not([disabled])")
    page.wait_for_function("document.querySelector('[data-testid=player]')?.dataset.startupMs > 0", timeout=20_000)
    page.evaluate(MONITOR)
    return page.player()


def position(page: Browser) -> float:
    return float(page.evaluate("document.querySelector('[data-testid=video]').currentTime"))


def wait_playing_past(page: Browser, seconds: float, timeout: int = 30_000) -> None:
    page.wait_for_function(
        f"(() => {{ const v = document.querySelector('[data-testid=video]');"
        f" return !v.paused && !v.seeking && v.currentTime > {seconds}; }})()",
        timeout=timeout,
    )
