"""Browser tests: the real platform (`marquee up` with its demo content, packaged protected, and edge processes) and
headless Chromium driving the web player the gateway serves. Screenshots of the main screens go to
build/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import Browser, missing_requirements
from tests.e2e.harness import PROTECTED_ENV, ROOT, Platform, start_platform

SCREENSHOTS = ROOT / "build" / "screenshots"


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    missing = missing_requirements()
    if missing:
        pytest.fail(f"the browser tests cannot run: {missing}")
    running = start_platform(tmp_path_factory.mktemp("e2e"), PROTECTED_ENV)
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
