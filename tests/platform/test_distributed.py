"""`marquee up --distributed`: every service as its own `marquee serve` processes (two replicas of accounts,
catalog, playback and recommendations), the gateway round-robining across them, a supervisor that restarts what
dies. Run on the test session's redis-server (``--redis``) and either one SQLite store in the data directory that
every replica shares (``--store sqlite``) or the session's Cassandra node (``--cql HOST:PORT``, keyspaces of the
test's own): no second Redis or JVM starts."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from marquee.v1 import accounts_pb2, playback_pb2
from services.common.config import load_config
from services.common.store.cassandra_node import CassandraNode
from services.platform.admin import admin_metadata
from services.platform.localredis import RedisServer
from tests.cql import unique_prefix
from tests.platform.distributed import (
    alive,
    first_segments,
    gateway_sign_in,
    grpc_web,
    logs_size,
    playable_title,
    read_replicas,
    running_in,
    start,
    status,
)
from tests.platform.test_up import wait_progressing


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
    proc, ready = start(tmp_path, redis_server.url, store, env)
    pids: set[int] = set()
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"marquee up --distributed exited: {proc.communicate()}")
            return ready.exists()

        wait_progressing(up, lambda: logs_size(data), "marquee up --distributed starting")
        described = json.loads(ready.read_text())
        replicas = read_replicas(ready)
        pids = {int(r["pid"]) for r in replicas.values()}
        assert {"accounts-1", "accounts-2", "playback-1", "playback-2", "steering-1", "steering-2"} <= set(replicas)
        assert "gateway-1" in replicas and "gateway-2" not in replicas
        assert len(described["accounts"][0]["address"].split(",")) == 2  # the service at both replicas
        gateway = next(e["address"] for e in described["gateway"] if e["kind"] == "http").rstrip("/")
        email, _, password = next(e for e in described["accounts"] if e["kind"] == "info")["address"].partition(" / ")
        toml = (data / "distributed" / "marquee.toml").read_text()
        assert 'kind = "redis"' in toml and "[addresses]" in toml

        # sign in through the gateway, pick the demo profile, play a title's manifest
        signed, selected = gateway_sign_in(gateway, email, password)
        account = signed.account.name
        token, profile = selected.tokens.access_token, selected.profile.name
        md = admin_metadata(load_config(data_dir=data))
        catalogs = [r["address"] for name, r in replicas.items() if name.startswith("catalog-")]
        find = playable_title(catalogs, md)
        title = wait_progressing(find, lambda: logs_size(data), "a demo title becoming playable")
        started = grpc_web(
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
            got = grpc_web(
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
            grpc_web(
                gateway,
                "marquee.v1.PlaybackService/UpdatePosition",
                update,
                playback_pb2.UpdatePositionResponse,
                token,
            )
            position = grpc_web(
                gateway,
                "marquee.v1.PlaybackService/GetPosition",
                playback_pb2.GetPositionRequest(profile=profile, title=title),
                playback_pb2.GetPositionResponse,
                token,
            )
            assert position.position.position.ToMilliseconds() == 300 * step  # read back, whichever replica answers

        # the supervisor restarted both, and says so (new pids in what it reports)
        def restarted() -> bool:
            now = read_replicas(ready)
            return all(int(now[n]["pid"]) != pid and now[n]["restarts"] == "1" for n, pid in killed.items())

        wait_progressing(restarted, lambda: logs_size(data), "the killed replicas restarting")
        replicas = read_replicas(ready)
        pids |= {int(r["pid"]) for r in replicas.values()}
        assert all(alive(int(replicas[n]["pid"])) for n in killed)

        # a stopped session's segment URLs are refused by every edge (steering's revocation feed), whichever
        # playback replica stopped it
        segments = first_segments(started.session.manifest_urls.hls_uri)
        assert segments and {status(url) for url in segments} == {200}
        grpc_web(
            gateway,
            "marquee.v1.PlaybackService/StopPlayback",
            playback_pb2.StopPlaybackRequest(session=started.session.name),
            playback_pb2.StopPlaybackResponse,
            token,
        )
        stopped = time.monotonic()
        wait_progressing(
            lambda: {status(url) for url in segments} == {410},
            lambda: logs_size(data),
            "every edge refusing the stopped session's segments",
        )
        print(
            f"\nedges refused the stopped session's {len(segments)} segment URLs {time.monotonic() - stopped:.2f} s"
            " after StopPlayback answered"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "Marquee is up" in out and "Processes" in out and "Marquee stopped." in out
    assert "Traceback" not in err
    assert "restarted accounts-1" in out + err and "restarted playback-1" in out + err
    assert pids and not [pid for pid in pids if alive(pid)], "no process outlives the supervisor"
    assert running_in(data) == [], "nothing started on the data directory is left running"
