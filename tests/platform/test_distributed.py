"""`marquee up --distributed`: every service as its own `marquee serve` processes (two replicas of accounts,
catalog, playback and recommendations), the gateway round-robining across them, a supervisor that restarts what
dies. Run on the test session's redis-server (``--redis``) and either one SQLite store in the data directory that
every replica shares (``--store sqlite``) or the session's Cassandra node (``--cql HOST:PORT``, keyspaces of the
test's own): no second Redis or JVM starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message

from marquee.v1 import accounts_pb2, catalog_pb2, catalog_pb2_grpc, playback_pb2
from services.common.config import load_config
from services.common.store.cassandra_node import CassandraNode
from services.platform.admin import admin_metadata
from services.platform.localredis import RedisServer
from tests.cql import unique_prefix
from tests.gateway import grpcweb
from tests.platform.test_up import FAST_ENV, wait_progressing

M = TypeVar("M", bound=Message)


def _start(
    tmp_path: Path, redis: RedisServer, store: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[str], Path]:
    ready = tmp_path / "ready.json"
    env = {
        **os.environ,
        **FAST_ENV,
        "MARQUEE_SERVICES__ENCODER__DEMO__SYNTHETIC_SECONDS": "4",
        "MARQUEE_REDIS__KEY_PREFIX": f"d{uuid.uuid4().hex[:12]}:",
        **env,
    }
    argv = [sys.executable, "-m", "services.platform.cli", "--data-dir", str(tmp_path / "data"), "up"]
    argv += ["--distributed", *store, "--redis", redis.url, "--ephemeral-ports"]
    proc = subprocess.Popen(
        [*argv, "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    return proc, ready


def _logs_size(data: Path) -> int:
    return sum(p.stat().st_size for p in (data / "logs").glob("*.log")) if (data / "logs").exists() else 0


def _grpc_web(gateway: str, method: str, request: Message, reply: type[M], token: str | None = None) -> M:
    """One unary call through the gateway, retried on UNAVAILABLE as a client does (a replica that just died)."""
    headers = {"content-type": grpcweb.BINARY, "x-grpc-web": "1"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    for attempt in range(1, 40):
        http = urllib.request.Request(
            f"{gateway}/{method}", data=grpcweb.frame(request.SerializeToString()), headers=headers
        )
        with urllib.request.urlopen(http, timeout=30) as answer:
            parsed = grpcweb.parse(answer.status, _headers(answer), answer.read(), text=False)
        if parsed.code == grpc.StatusCode.OK:
            return reply.FromString(parsed.messages[0])
        assert parsed.code == grpc.StatusCode.UNAVAILABLE, (method, parsed.code, parsed.message)
        time.sleep(min(0.05 * attempt, 1.0))  # a client's backoff between retries
    raise AssertionError(f"{method} stayed UNAVAILABLE")


def _headers(answer: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in answer.headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


def _replicas(ready: Path) -> dict[str, dict[str, str]]:
    return {r["label"]: r for r in json.loads(ready.read_text())["replicas"]}


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def _playable_title(catalogs: list[str], md: tuple[tuple[str, str], ...]) -> Callable[[], str | None]:
    """A title every catalog replica calls playable (each follows encoding.done on its own, so one may lag)."""

    def playable(address: str) -> list[str]:
        with grpc.insecure_channel(address) as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            request = catalog_pb2.ListTitlesRequest(
                filter=catalog_pb2.TitleFilter(playable_only=True, region="US"), page_size=100
            )
            return [t.name for t in stub.ListTitles(request, metadata=md, timeout=30).titles]

    def find() -> str | None:
        seen = [playable(address) for address in catalogs]
        common = [name for name in seen[0] if all(name in other for other in seen[1:])]
        return common[0] if common else None

    return find


@pytest.mark.parametrize("store_kind", ["sqlite", "cql"])
def test_distributed_topology_survives_killed_replicas_and_stops_cleanly(
    tmp_path: Path, redis_server: RedisServer, store_kind: str, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    if store_kind == "cql":
        node: CassandraNode = request.getfixturevalue("cassandra")
        store = ["--cql", node.contact_point]
        env = {"MARQUEE_STORE__CQL__KEYSPACE_PREFIX": unique_prefix()}
    else:
        store, env = ["--store", "sqlite"], {}
    proc, ready = _start(tmp_path, redis_server, store, env)
    pids: set[int] = set()
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"marquee up --distributed exited: {proc.communicate()}")
            return ready.exists()

        wait_progressing(up, lambda: _logs_size(data), "marquee up --distributed starting")
        described = json.loads(ready.read_text())
        replicas = _replicas(ready)
        pids = {int(r["pid"]) for r in replicas.values()}
        assert {"accounts-1", "accounts-2", "playback-1", "playback-2", "steering-1", "gateway-1"} <= set(replicas)
        assert "steering-2" not in replicas  # its registry is per process: one replica
        assert len(described["accounts"][0]["address"].split(",")) == 2  # the service at both replicas
        gateway = next(e["address"] for e in described["gateway"] if e["kind"] == "http").rstrip("/")
        email, _, password = next(e for e in described["accounts"] if e["kind"] == "info")["address"].partition(" / ")
        toml = (data / "distributed" / "marquee.toml").read_text()
        assert 'kind = "redis"' in toml and "[addresses]" in toml

        # sign in through the gateway, pick the demo profile, play a title's manifest
        signed = _grpc_web(
            gateway,
            "marquee.v1.AccountService/SignIn",
            accounts_pb2.SignInRequest(email=email, password=password),
            accounts_pb2.SignInResponse,
        )
        account = signed.account.name
        profiles = _grpc_web(
            gateway,
            "marquee.v1.AccountService/ListProfiles",
            accounts_pb2.ListProfilesRequest(parent=account),
            accounts_pb2.ListProfilesResponse,
            signed.tokens.access_token,
        ).profiles
        selected = _grpc_web(
            gateway,
            "marquee.v1.AccountService/SelectProfile",
            accounts_pb2.SelectProfileRequest(profile=profiles[0].name, refresh_token=signed.tokens.refresh_token),
            accounts_pb2.SelectProfileResponse,
            signed.tokens.access_token,
        )
        token, profile = selected.tokens.access_token, selected.profile.name
        md = admin_metadata(load_config(data_dir=data))
        catalogs = [r["address"] for name, r in replicas.items() if name.startswith("catalog-")]
        find = _playable_title(catalogs, md)
        title = wait_progressing(find, lambda: _logs_size(data), "a demo title becoming playable")
        started = _grpc_web(
            gateway,
            "marquee.v1.PlaybackService/StartPlayback",
            playback_pb2.StartPlaybackRequest(title=title, profile=profile),
            playback_pb2.StartPlaybackResponse,
            token,
        )
        with urllib.request.urlopen(started.session.manifest_urls.hls_uri, timeout=30) as manifest:
            assert manifest.read().startswith(b"#EXTM3U")

        # SIGKILL one replica of accounts and of playback: calls through the gateway keep succeeding
        killed = {name: int(replicas[name]["pid"]) for name in ("accounts-1", "playback-1")}
        for pid in killed.values():
            os.kill(pid, signal.SIGKILL)
        for step in range(1, 11):  # positions within the 4 s demo title: 0.3 s, 0.6 s, ...
            got = _grpc_web(
                gateway,
                "marquee.v1.AccountService/GetAccount",
                accounts_pb2.GetAccountRequest(name=account),
                accounts_pb2.GetAccountResponse,
                token,
            )
            assert got.account.email == email
            update = playback_pb2.UpdatePositionRequest(session=started.session.name)
            update.position.FromMilliseconds(300 * step)
            update.event_time.GetCurrentTime()
            _grpc_web(
                gateway,
                "marquee.v1.PlaybackService/UpdatePosition",
                update,
                playback_pb2.UpdatePositionResponse,
                token,
            )
            position = _grpc_web(
                gateway,
                "marquee.v1.PlaybackService/GetPosition",
                playback_pb2.GetPositionRequest(profile=profile, title=title),
                playback_pb2.GetPositionResponse,
                token,
            )
            assert position.position.position.ToMilliseconds() == 300 * step  # read back, whichever replica answers

        # the supervisor restarted both, and says so (new pids in what it reports)
        def restarted() -> bool:
            now = _replicas(ready)
            return all(int(now[n]["pid"]) != pid and now[n]["restarts"] == "1" for n, pid in killed.items())

        wait_progressing(restarted, lambda: _logs_size(data), "the killed replicas restarting")
        replicas = _replicas(ready)
        pids |= {int(r["pid"]) for r in replicas.values()}
        assert all(_alive(int(replicas[n]["pid"])) for n in killed)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "Marquee is up" in out and "Processes" in out and "Marquee stopped." in out
    assert "Traceback" not in err
    assert "restarted accounts-1" in out + err and "restarted playback-1" in out + err
    assert pids and not [pid for pid in pids if _alive(pid)], "no process outlives the supervisor"
    assert _running_in(data) == [], "nothing started on the data directory is left running"


def _running_in(data: Path) -> list[str]:
    """Every live process whose command line names ``data`` (the replicas, the encoder's tools, a Redis server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if str(data) in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found
