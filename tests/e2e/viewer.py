"""What a viewer does in the web player, as browser steps shared by the tests and bench/video_start.py."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tests.e2e.browser import Browser

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


class Site(Protocol):
    """Where the web player is and the demo account that signs in to it (tests.e2e.harness.Platform is one)."""

    @property
    def url(self) -> str: ...

    def demo_sign_in(self) -> tuple[str, str]: ...


def sign_in(page: Browser, platform: Site, profile: str = "Alex", shots: Path | None = None) -> None:
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


def watch(page: Browser, platform: Site, title_id: str) -> dict[str, str]:
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
