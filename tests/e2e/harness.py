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
from tests.platform.test_up import wait_progressing

ROOT = Path(__file__).resolve().parents[2]
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
# The browser tests' platform packages its demo titles protected (Common Encryption with ClearKey licences from
# playback, docs/drm.md), so the web player is tested on the harder path: EME, licences, encrypted downloads.
PROTECTED_ENV = {"MARQUEE_SERVICES__ENCODER__PROTECTION": "cenc"}


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
        # protected titles' HLS media playlists name the session's raw keys on playback's manifest site
        args += ["--key-uri-base", self.address("playback", "session manifests")]
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        while not ready.exists():  # however long a busy machine takes, while the edge is alive
            if proc.poll() is not None:
                raise RuntimeError(f"edge {name} exited with {proc.returncode} while starting")
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

    def wait_for_edges(self) -> None:
        """Until steering calls every edge serving; fails when their states stop changing for a while."""
        from marquee.v1 import steering_pb2, steering_pb2_grpc

        SERVING = (steering_pb2.EDGE_STATE_HEALTHY, steering_pb2.EDGE_STATE_DEGRADED)
        with grpc.insecure_channel(self.address("steering")) as channel:
            stub = steering_pb2_grpc.SteeringServiceStub(channel)

            def states() -> list[tuple[str, int, int]]:
                try:
                    edges = stub.ListEdges(steering_pb2.ListEdgesRequest(), metadata=self.admin, timeout=30).edges
                except grpc.RpcError as err:
                    if err.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                        raise
                    # a starved platform answers late: it is progressing while it uses the CPU
                    return [("no answer", err.code().value[0], cpu_time(self.proc.pid))]
                return sorted((e.name, e.state, e.last_heartbeat_time.seconds) for e in edges)

            def serving() -> bool:
                # serving: healthy, or degraded by players' problem reports (a killed edge's, before it restarted)
                now = {name for name, state, _ in states() if state in SERVING}
                return {f"edges/{n}" for n in EDGES} <= now

            wait_progressing(serving, states, "the edges becoming healthy in steering")

    def wait_until_playable(self, media: str = MEDIA) -> None:
        """Waits for the demo encode of ``media`` (the encoder runs at start) while its progress moves."""
        with grpc.insecure_channel(self.address("encoder")) as channel:
            stub = encoding_pb2_grpc.EncodingServiceStub(channel)

            def job() -> encoding_pb2.EncodingJob | None:
                jobs = stub.ListEncodingJobs(encoding_pb2.ListEncodingJobsRequest(), metadata=self.admin, timeout=30)
                return {j.title: j for j in jobs.jobs}.get(f"titles/{media}")

            def done() -> bool:
                found = job()
                if found is not None and found.state == encoding_pb2.ENCODING_JOB_STATE_FAILED:
                    raise RuntimeError(f"the demo encode of {media} failed: {found.error}")
                return found is not None and found.state == encoding_pb2.ENCODING_JOB_STATE_SUCCEEDED

            def progress() -> object:
                found = job()
                return None if found is None else (found.state, found.progress.SerializeToString())

            wait_progressing(done, progress, f"the demo encode of {media}")

    def titles_playing(self, media: str = MEDIA, count: int = 5) -> list[catalog_pb2.Title]:
        """Playable demo titles on ``media``, most popular first (each test plays its own: positions differ)."""
        with grpc.insecure_channel(self.address("catalog")) as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)

            def playable() -> list[catalog_pb2.Title]:
                found: list[catalog_pb2.Title] = []
                token = ""
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
                return found

            # the catalog follows encoding.done asynchronously, in batches
            found = wait_progressing(
                lambda: playable() if len(playable()) >= count else None,
                lambda: len(playable()),
                f"{count} playable titles on {media}",
            )
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


def cpu_time(pid: int) -> int:
    """Clock ticks of CPU a live process has used: it moves while the process works (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


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
    platform_log = workdir / "platform.log"

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"marquee up exited with {proc.returncode} while starting; see {platform_log}")
        return ready.exists()

    try:
        wait_progressing(started, lambda: (platform_log.stat().st_size, cpu_time(proc.pid)), "marquee up starting")
    except BaseException:
        proc.kill()
        raise
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
