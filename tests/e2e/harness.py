"""The real platform for browser tests and benchmarks: `marquee up` on ephemeral ports with its demo content, and
edges as their own `python -m edge` processes (so a test can kill one, or change its rate limit while it
serves), registered with steering.

Used by tests/e2e and bench/video_start.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from marquee.v1 import catalog_pb2, catalog_pb2_grpc, encoding_pb2, encoding_pb2_grpc
from services.common.config import load_config
from services.platform.admin import admin_metadata

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0
ENCODE_TIMEOUT = 600.0
# The synthetic 720p demo master (testsrc2): the demo titles whose MovieLens id is 2 mod 4 play it.
MEDIA = "test-pattern"
# Each edge on a loopback address of its own, as edges are separate hosts in production: players tell edges
# apart by host (Shaka Player bans a failing host, whatever its port, so two edges on one address fail together).
EDGES = {"edge-a": "127.0.0.2", "edge-b": "127.0.0.3"}

PLATFORM_ENV = {
    "MARQUEE_LOGGING__LEVEL": "WARNING",
    "MARQUEE_SERVICES__ENCODER__PRESET": "ultrafast",
    # edges run as processes of their own (below), not inside the platform
    "MARQUEE_SERVICES__EDGE__ENABLED": "false",
    # a killed edge leaves steering's answers within two seconds
    "MARQUEE_SERVICES__STEERING__HEARTBEAT_INTERVAL": "0.5",
    # short session leases: a session's signed URL token expires a few seconds after its last renewal, so every
    # play here outlives several tokens and the player must keep putting the renewed one on its requests
    "MARQUEE_SERVICES__PLAYBACK__HEARTBEAT_INTERVAL": "2",
    "MARQUEE_SERVICES__PLAYBACK__SESSION_TIMEOUT": "8",
    "MARQUEE_SERVICES__STEERING__HEARTBEAT_TIMEOUT": "2",
    # tests and benchmarks sign in and call from one address more than a person would
    **{
        f"MARQUEE_SERVICES__ACCOUNTS__SIGN_IN_PER_{scope}__{key}": value
        for scope in ("ACCOUNT", "ADDRESS")
        for key, value in (("LIMIT", "1000"), ("PERIOD", "60"), ("BURST", "1000"))
    },
    "MARQUEE_SERVICES__ACCOUNTS__DEMO__PLAN": "premium",
    "MARQUEE_SERVICES__GATEWAY__LIMITS__REQUESTS_PER_SECOND": "1000",
    "MARQUEE_SERVICES__GATEWAY__LIMITS__BURST": "1000",
}


@dataclass
class EdgeProcess:
    """One `python -m edge` process; `command` changes it while it serves."""

    name: str
    proc: subprocess.Popen[str]
    base_url: str

    def command(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def set_rate_limit(self, bytes_per_sec: int) -> None:
        answer = self.command(f"rate-limit {bytes_per_sec}")
        if answer != f"ok rate-limit {bytes_per_sec}":
            raise RuntimeError(f"{self.name}: {answer!r}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Platform:
    data_dir: Path
    proc: subprocess.Popen[bytes]
    endpoints: dict[str, list[dict[str, str]]]
    edges: dict[str, EdgeProcess] = field(default_factory=dict)

    def address(self, service: str, label: str | None = None) -> str:
        for endpoint in self.endpoints[service]:
            if label is None or endpoint["label"] == label:
                return endpoint["address"]
        raise KeyError(f"{service} {label}")

    @property
    def url(self) -> str:
        """The web player's URL (the gateway)."""
        return next(e["address"] for e in self.endpoints["gateway"] if e["kind"] == "http").rstrip("/")

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the platform's samples named ``name`` (whose labels include ``labels``), read from its
        /metrics endpoint."""
        body = urllib.request.urlopen(self.address("platform", "metrics"), timeout=5).read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    @property
    def admin(self) -> tuple[tuple[str, str], ...]:
        return admin_metadata(load_config(data_dir=self.data_dir))

    @property
    def origin(self) -> Path:
        return self.data_dir / "origin"

    def demo_sign_in(self) -> tuple[str, str]:
        """The demo account's email and password, as `marquee up` prints them."""
        email, _, password = self.address("accounts", "demo sign-in").partition(" / ")
        return email, password

    def start_edge(self, name: str) -> EdgeProcess:
        ready = self.data_dir.parent / f"{name}.ready.json"
        ready.unlink(missing_ok=True)
        args = ["--data-dir", str(self.data_dir), "--name", name, "--upstream", str(self.origin)]
        args += ["--host", EDGES[name], "--steering", self.address("steering"), "--heartbeat-interval", "0.5"]
        args += ["--commands-on-stdin", "--ready-file", str(ready)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"edge {name} did not start")
            time.sleep(0.05)
        assert proc.stdout is not None
        proc.stdout.readline()  # "edge NAME serving URL"
        edge = EdgeProcess(name, proc, json.loads(ready.read_text())["base_url"])
        self.edges[name] = edge
        return edge

    def ensure_edges(self) -> None:
        """Every edge running and without a rate limit (tests kill and throttle them)."""
        for name in EDGES:
            edge = self.edges.get(name)
            if edge is None or not edge.alive:
                self.start_edge(name)
            else:
                edge.set_rate_limit(0)
        self.wait_for_edges()

    def wait_for_edges(self, timeout: float = 20) -> None:
        from marquee.v1 import steering_pb2, steering_pb2_grpc

        SERVING = (steering_pb2.EDGE_STATE_HEALTHY, steering_pb2.EDGE_STATE_DEGRADED)
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address("steering")) as channel:
            stub = steering_pb2_grpc.SteeringServiceStub(channel)
            while True:
                edges = stub.ListEdges(steering_pb2.ListEdgesRequest(), metadata=self.admin, timeout=10).edges
                # serving: healthy, or degraded by players' problem reports (a killed edge's, before it restarted)
                serving = {e.name for e in edges if e.state in SERVING}
                if {f"edges/{n}" for n in EDGES} <= serving:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"edges not healthy in steering: {edges}")
                time.sleep(0.2)

    def wait_until_playable(self, media: str = MEDIA, timeout: float = ENCODE_TIMEOUT) -> None:
        """Waits for the demo encode of ``media`` (the encoder runs at start) and the catalog following it."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.address("encoder")) as channel:
            stub = encoding_pb2_grpc.EncodingServiceStub(channel)
            while True:
                jobs = stub.ListEncodingJobs(encoding_pb2.ListEncodingJobsRequest(), metadata=self.admin, timeout=10)
                state = {j.title: j.state for j in jobs.jobs}.get(f"titles/{media}")
                if state == encoding_pb2.ENCODING_JOB_STATE_SUCCEEDED:
                    break
                if state == encoding_pb2.ENCODING_JOB_STATE_FAILED:
                    raise RuntimeError(f"the demo encode of {media} failed")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the demo encode of {media} did not finish in {timeout:.0f} s")
                time.sleep(1)

    def titles_playing(self, media: str = MEDIA, count: int = 5) -> list[catalog_pb2.Title]:
        """Playable demo titles on ``media``, most popular first (each test plays its own: positions differ)."""
        found: list[catalog_pb2.Title] = []
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(self.address("catalog")) as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            while len(found) < count:
                found, token = [], ""
                while len(found) < count:
                    page = stub.ListTitles(
                        catalog_pb2.ListTitlesRequest(
                            filter=catalog_pb2.TitleFilter(playable_only=True, region="US"),
                            page_size=100,
                            page_token=token,
                        ),
                        metadata=self.admin,
                        timeout=10,
                    )
                    found += [t for t in page.titles if t.media == media and t.maturity_rating <= 4]
                    token = page.next_page_token
                    if not token:
                        break
                if len(found) < count:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"fewer than {count} playable titles on {media}")
                    time.sleep(0.5)  # the catalog follows encoding.done asynchronously
        return found[:count]

    def stop(self) -> None:
        for edge in self.edges.values():
            if edge.alive:
                edge.proc.terminate()
        for edge in self.edges.values():
            try:
                edge.proc.wait(10)
            except subprocess.TimeoutExpired:
                edge.proc.kill()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_platform(workdir: Path, env: dict[str, str] | None = None) -> Platform:
    """`marquee up` in ``workdir/data`` with the demo content, plus the edge processes; ready to browse."""
    data = workdir / "data"
    ready = workdir / "ready.json"
    ready.unlink(missing_ok=True)
    log = (workdir / "platform.log").open("wb")
    cmd = [sys.executable, "-m", "services.platform.cli", "--data-dir", str(data), "up", "--ephemeral-ports"]
    cmd += ["--ready-file", str(ready)]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **PLATFORM_ENV, **(env or {})}, cwd=ROOT
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"marquee up did not start; see {workdir / 'platform.log'}")
        time.sleep(0.1)
    endpoints: dict[str, Any] = json.loads(ready.read_text())
    platform = Platform(data, proc, endpoints)
    try:
        for name in EDGES:
            platform.start_edge(name)
        platform.wait_for_edges()
        platform.wait_until_playable()
    except BaseException:
        platform.stop()
        raise
    return platform
