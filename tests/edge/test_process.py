"""`python -m edge` as its own process: commands on standard input change a running edge (the per-connection
rate limit that the player tests turn on mid-play)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edge.http import get

SIZE = 200_000


@pytest.fixture
def edge_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    origin = tmp_path / "origin" / "t" / "r"
    origin.mkdir(parents=True)
    (origin / "seg-1.m4s").write_bytes(os.urandom(SIZE))
    ready = tmp_path / "ready.json"
    args = ["--data-dir", str(tmp_path / "data"), "--name", "edge-x", "--upstream", str(tmp_path / "origin")]
    args += ["--no-tokens", "--commands-on-stdin", "--ready-file", str(ready)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the edge process did not start"
        time.sleep(0.05)
    assert proc.stdout is not None and proc.stdout.readline().startswith("edge edge-x serving")
    yield proc, json.loads(ready.read_text())["port"]
    proc.terminate()
    proc.wait(10)


def command(proc: subprocess.Popen[str], line: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


async def timed_get(port: int) -> float:
    started = time.monotonic()
    reply = await get(port, "/v/t/r/seg-1.m4s")
    assert reply.status == 200 and len(reply.body) == SIZE
    return time.monotonic() - started


async def test_rate_limit_changes_while_serving(edge_process: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = edge_process
    assert await timed_get(port) < 1.0
    assert command(proc, "rate-limit 100000") == "ok rate-limit 100000"
    assert await timed_get(port) >= 1.5  # 200 kB at 100 kB/s, less the initial burst of a quarter second
    assert command(proc, "\nrate-limit 0") == "ok rate-limit 0"  # a blank line is ignored, not answered
    assert await timed_get(port) < 1.0
    assert command(proc, "rate-limit fast").startswith("error unknown command")
    assert proc.poll() is None


def test_public_url_and_metrics(tmp_path: Path) -> None:
    """What a pod runs: the edge listens on one address, registers the URL players use (``--public-url``) and
    serves its ``marquee_edge_*`` metrics on ``--metrics-port``."""
    origin = tmp_path / "origin" / "t" / "r"
    origin.mkdir(parents=True)
    (origin / "seg-1.m4s").write_bytes(b"x" * 1000)
    ready = tmp_path / "ready.json"
    public = "http://edge-0.edges.marquee.svc.cluster.local:8081/v/"
    args = ["--data-dir", str(tmp_path / "data"), "--name", "edge-0", "--upstream", str(tmp_path / "origin")]
    args += ["--no-tokens", "--public-url", public, "--metrics-port", "0", "--ready-file", str(ready)]
    proc = subprocess.Popen([sys.executable, "-m", "edge", *args], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the edge process did not start"
            time.sleep(0.05)
        described = json.loads(ready.read_text())
        assert described["base_url"] == public
        with urllib.request.urlopen(f"http://127.0.0.1:{described['port']}/v/t/r/seg-1.m4s", timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{described['metrics_port']}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert 'marquee_edge_requests_total{edge="edge-0"} 1.0' in text
        assert 'marquee_edge_cache_misses_total{edge="edge-0"} 1.0' in text
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
