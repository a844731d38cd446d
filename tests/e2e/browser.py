"""Headless Chromium from Python: the Node driver tests/players/browser.mjs (playwright-core) over JSON lines."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e.harness import ROOT

PLAYERS = ROOT / "tests" / "players"
CHROMIUM = "/usr/bin/chromium"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_site(root: Path) -> Iterator[str]:
    """A static HTTP server over ``root`` on a free loopback port, for a test page of its own origin; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class BrowserError(Exception):
    """The driver reported an error (a selector that never appeared, a failed navigation...)."""


def missing_requirements() -> str | None:
    """Why the browser cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (./dev setup installs it)"
    if not (PLAYERS / "node_modules" / "playwright-core").is_dir():
        return "tests/players/node_modules lacks playwright-core (./dev setup runs npm ci there)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (Debian chromium, in scripts/apt-packages.txt)"
    return None


class Browser:
    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            ["node", str(PLAYERS / "browser.mjs"), "--executable", CHROMIUM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PLAYERS,
        )
        self._next = 0

    def call(self, method: str, **params: Any) -> Any:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._next += 1
        self._proc.stdin.write(json.dumps({"id": self._next, "method": method, "params": params}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise BrowserError(f"the browser driver exited ({self._proc.wait(5)})")
        answer = json.loads(line)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer["result"]

    # the calls the tests use, typed

    def new_page(self, width: int = 1280, height: int = 720) -> None:
        self.call("newPage", width=width, height=height)

    def goto(self, url: str) -> None:
        self.call("goto", url=url)

    def set_content(self, html: str) -> None:
        self.call("setContent", html=html)

    def add_script(self, path: Path) -> None:
        self.call("addScript", path=str(path))

    def set_offline(self, offline: bool) -> None:
        """Cuts (or restores) the page's network, as a train tunnel would: navigator.onLine follows."""
        self.call("setOffline", offline=offline)

    def reload(self) -> None:
        self.call("reload")

    def url(self) -> str:
        return str(self.call("url"))

    def click(self, selector: str, timeout: int = 10_000) -> None:
        self.call("click", selector=selector, timeout=timeout)

    def fill(self, selector: str, text: str) -> None:
        self.call("fill", selector=selector, text=text)

    def type(self, selector: str, text: str, delay: int = 80) -> None:
        self.call("type", selector=selector, text=text, delay=delay)

    def wait_for(self, selector: str, timeout: int = 10_000, state: str = "visible") -> None:
        self.call("waitFor", selector=selector, timeout=timeout, state=state)

    def count(self, selector: str) -> int:
        return int(self.call("count", selector=selector))

    def text(self, selector: str) -> str:
        return str(self.call("text", selector=selector) or "")

    def texts(self, selector: str) -> list[str]:
        return list(self.call("texts", selector=selector))

    def attribute(self, selector: str, name: str) -> str | None:
        value = self.call("attribute", selector=selector, name=name)
        return None if value is None else str(value)

    def evaluate(self, expression: str) -> Any:
        return self.call("evaluate", expression=expression)

    def wait_for_function(self, expression: str, timeout: int = 10_000) -> Any:
        return self.call("waitForFunction", expression=expression, timeout=timeout)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.call("screenshot", path=str(path))
        return path

    def console(self) -> list[str]:
        return list(self.call("console"))

    def player(self) -> dict[str, str]:
        """The player's data attributes (state, startupMs, height, bandwidth, pathway, stalls...)."""
        return dict(self.evaluate("({...document.querySelector('[data-testid=player]')?.dataset})") or {})

    def close(self) -> None:
        with contextlib.suppress(BrowserError, BrokenPipeError, OSError):
            self.call("close")
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
