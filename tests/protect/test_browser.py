"""The real proof that the boxes are right: headless Chromium plays our 'cenc' and 'cbcs' output through MSE and EME
ClearKey (the page answers the licence requests itself, from keys in its config), and the picture it shows (in a
screenshot: a canvas cannot read encrypted frames) is the picture of the clear stream."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from services.encoder.media.pipeline import EncodedTitle
from tests.e2e.browser import Browser, missing_requirements, static_site
from tests.protect.titles import protect_title

PAGE = Path(__file__).with_name("eme_player.html")
SEEK_TO = (0.52, 2.52, 4.52)  # seconds: mid-frame times in the first and second segments


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A static HTTP server on a free loopback port over a directory the tests fill."""
    root = tmp_path_factory.mktemp("eme-site")
    shutil.copy(PAGE, root / "index.html")
    with static_site(root) as base:
        yield root, base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    missing = missing_requirements()
    if missing:
        pytest.fail(f"the browser check cannot run: {missing}")
    b = Browser()
    try:
        yield b
    finally:
        b.close()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def publish(site_root: Path, name: str, title_dir: Path, keys: dict[str, tuple[bytes, bytes]] | None) -> None:
    """Copy a title into the site and write the player's config for it."""
    shutil.copytree(title_dir, site_root / name, dirs_exist_ok=True)
    doc = json.loads((title_dir / "media.json").read_text())
    config: dict[str, Any] = {"keys": None}
    for kind in ("video", "audio"):
        r = doc[kind][0]
        segments = [f"{r['id']}/seg-{n}.m4s" for n in range(1, len(r["segments"]) + 1)]
        config[kind] = {
            "mime": f'{kind}/mp4; codecs="{r["codecs"]}"',
            "init": f"{r['id']}/init.mp4",
            "segments": segments,
        }
    if keys is not None:
        config["keys"] = {b64url(kid): b64url(key) for kid, key in keys.values()}
    (site_root / name / "config.json").write_text(json.dumps(config))
    shutil.copy(site_root / "index.html", site_root / name / "index.html")


Picture = npt.NDArray[np.uint8]


def screenshot(browser: Browser, path: Path, box: dict[str, float]) -> Picture:
    """The page's pixels inside `box` (a PNG decoded by PyAV)."""
    browser.screenshot(path)
    with av.open(str(path), "r") as image:
        frame = np.asarray(next(image.decode(video=0)).to_ndarray(format="rgb24"), dtype=np.uint8)
    x, y, w, h = (round(box[k]) for k in ("x", "y", "width", "height"))
    return frame[y : y + h, x : x + w]


def play(browser: Browser, url: str, shots: Path) -> tuple[dict[str, Any], list[Picture]]:
    """Load the player, let it play a second, then take the pictures at SEEK_TO."""
    browser.new_page()
    browser.goto(url)
    browser.wait_for_function(
        "window.state && (window.state.error || (window.progress().phase === 'playing'"
        " && window.progress().currentTime > 1.0))",
        timeout=30_000,
    )
    progress = dict(browser.evaluate("window.progress()"))
    pictures = []
    if progress["error"] is None:
        for t in SEEK_TO:
            box = browser.evaluate(f"window.seekTo({t})")
            pictures.append(screenshot(browser, shots / f"{t}.png", box))
    return progress, pictures


def mean_abs_diff(a: Picture, b: Picture) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def clear_playback(
    browser: Browser, site: tuple[Path, str], title: EncodedTitle, tmp_path_factory: pytest.TempPathFactory
) -> list[Picture]:
    root, base = site
    publish(root, "clear", title.path, None)
    progress, pictures = play(browser, f"{base}/clear/index.html", tmp_path_factory.mktemp("clear-shots"))
    assert progress["error"] is None, progress
    # the pictures differ from each other: a black or frozen video would not
    assert mean_abs_diff(pictures[0], pictures[1]) > 5
    return pictures


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_chromium_plays_protected_media_with_clearkey(
    browser: Browser,
    site: tuple[Path, str],
    title: EncodedTitle,
    clear_playback: list[Picture],
    scheme: str,
    tmp_path: Path,
) -> None:
    root, base = site
    protected = protect_title(title.path, tmp_path / scheme, scheme)
    publish(root, scheme, protected.path, protected.keys)
    progress, pictures = play(browser, f"{base}/{scheme}/index.html", tmp_path)
    console = browser.console()
    assert progress["error"] is None, (progress, console)
    # one licence request per init segment, each asking for that track's key id
    assert progress["encryptedEvents"] >= 2
    asked = {kid for kids in progress["licences"] for kid in kids}
    assert asked == {b64url(kid) for kid, _ in protected.keys.values()}
    assert progress["decodedFrames"] > 10 and progress["currentTime"] > 1.0
    for seconds, got, want in zip(SEEK_TO, pictures, clear_playback, strict=True):
        assert mean_abs_diff(got, want) < 2.0, f"the picture at {seconds} s differs from the clear stream's"


def test_without_a_licence_nothing_plays(
    browser: Browser, site: tuple[Path, str], title: EncodedTitle, tmp_path: Path
) -> None:
    """The same page with no key to give: the element waits for a key and decodes nothing."""
    root, base = site
    protected = protect_title(title.path, tmp_path / "nokey", "cenc")
    publish(root, "nokey", protected.path, {})
    browser.new_page()
    browser.goto(f"{base}/nokey/index.html")
    browser.wait_for_function("window.state && (window.state.waitingForKey || window.state.error)", timeout=30_000)
    progress = browser.evaluate("window.progress()")
    assert progress["waitingForKey"] and progress["error"] is None
    assert progress["decodedFrames"] == 0 and progress["currentTime"] == 0
