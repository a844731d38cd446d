"""`marquee up` as a user runs it: a real process that starts every service, answers, and stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from marquee.v1 import accounts_pb2, accounts_pb2_grpc
from services.platform.plugins import discover

# Waits follow what the platform reports (its log, job progress, playable titles): they fail only when nothing has
# moved for this long, so a busy machine makes them slower, not red.
STALL_SECONDS = 90.0

FAST_ENV = {"MARQUEE_SERVICES__ENCODER__PRESET": "ultrafast"}

T = TypeVar("T")


def wait_progressing(done: Callable[[], T | None], progress: Callable[[], object], what: str) -> T:
    """Poll ``done`` until it returns a value; fail when ``progress``'s snapshot stays the same STALL_SECONDS."""
    last, since = progress(), time.monotonic()
    while True:
        value = done()
        if value is not None and value is not False:
            return value
        snapshot = progress()
        if snapshot != last:
            last, since = snapshot, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            raise AssertionError(f"{what}: no progress in {STALL_SECONDS:.0f} s (last seen: {snapshot})")
        time.sleep(0.25)


def _start(
    tmp_path: Path, env: dict[str, str] | None = None, only: list[str] | None = None, extra: list[str] | None = None
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    ready = tmp_path / "ready.json"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.platform.cli",
            "--data-dir",
            str(tmp_path / "data"),
            "up",
            "--ephemeral-ports",
            "--ready-file",
            str(ready),
            *(["--only", *only] if only else []),
            *(extra or []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **FAST_ENV, **(env or {})},
    )
    log = tmp_path / "data" / "logs" / "marquee.log"

    def started() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"marquee up exited early: {proc.communicate()}")
        return ready.exists()

    try:
        wait_progressing(started, lambda: log.stat().st_size if log.exists() else 0, "marquee up starting")
    except AssertionError:
        proc.kill()
        raise
    return proc, json.loads(ready.read_text())


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def test_plugins_are_discovered() -> None:
    names = [p.name for p in discover()]
    assert {"accounts", "catalog", "encoder", "edge", "steering", "playback"} <= set(names)
    assert names.index("steering") < names.index("edge")  # edges register with steering as they start
    assert names.index("catalog") < names.index("encoder")  # it follows encoding.done from the first event


def test_up_serves_and_stops_cleanly_on_ctrl_c_and_on_sigterm(tmp_path: Path) -> None:
    """The first run stops on Ctrl-C (SIGINT), the second, on the same data, on SIGTERM: each stops cleanly."""
    no_demo = {"MARQUEE_SERVICES__ENCODER__DEMO__ENABLED": "false"}
    proc, endpoints = _start(tmp_path, no_demo)
    try:
        address = endpoints["accounts"][0]["address"]
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "marquee.v1.AccountService"):
                status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
                assert status == health_pb2.HealthCheckResponse.SERVING
            stub = accounts_pb2_grpc.AccountServiceStub(channel)
            up = stub.SignUp(
                accounts_pb2.SignUpRequest(email="up@example.com", password="long enough pass"), timeout=10
            )
            assert up.account.email == "up@example.com"
        metrics_url = endpoints["platform"][0]["address"]
        body = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
        assert 'grpc_method="SignUp"' in body
    finally:
        code, out, err = _stop(proc, signal.SIGINT)
    _check_stopped_cleanly(code, out, err)
    # the data survived: a second start sees the account (sign-in works with the persisted signing key too)
    proc, endpoints = _start(tmp_path, no_demo)
    try:
        with grpc.insecure_channel(endpoints["accounts"][0]["address"]) as channel:
            stub = accounts_pb2_grpc.AccountServiceStub(channel)
            signed = stub.SignIn(
                accounts_pb2.SignInRequest(email="up@example.com", password="long enough pass"), timeout=10
            )
            got = stub.GetAccount(
                accounts_pb2.GetAccountRequest(name=signed.account.name),
                metadata=(("authorization", f"Bearer {up.tokens.access_token}"),),
                timeout=10,
            )
            assert got.account.email == "up@example.com"
    finally:
        code, out, err = _stop(proc, signal.SIGTERM)
    _check_stopped_cleanly(code, out, err)
    _check_calm_console(out, err, tmp_path / "data" / "logs" / "marquee.log", signed.account.name)


def _check_stopped_cleanly(code: int, out: str, err: str) -> None:
    assert code == 0, err
    assert "Marquee is up" in out and "Marquee stopped." in out
    assert "Traceback" not in err


def _check_calm_console(out: str, err: str, log: Path, account_name: str) -> None:
    """The terminal gets the endpoints and where the logs are, not the log stream; the file has every line, and
    access lines name the caller's account."""
    assert f"Logs: {log.resolve()}" in out
    assert '{"ts"' not in out + err and "marquee.access" not in out + err
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    access = [line for line in lines if line["logger"] == "marquee.access"]
    assert access, "the access log is in the file"
    account_id = account_name.split("/")[1]
    assert any(line["method"].endswith("/GetAccount") and line["account"] == account_id for line in access)


def test_up_encodes_the_demo_content_and_ingests(tmp_path: Path) -> None:
    from marquee.v1 import encoding_pb2, encoding_pb2_grpc
    from services.common.config import load_config
    from services.platform.admin import admin_metadata
    from tests.encoder.conftest import make_source

    proc, endpoints = _start(tmp_path, {"MARQUEE_SERVICES__ENCODER__DEMO__SYNTHETIC_SECONDS": "4"})
    try:
        address = endpoints["encoder"][0]["address"]
        origin = Path(endpoints["encoder"][1]["address"])
        clip = make_source(tmp_path / "mine.mp4", width=640, height=360, seconds=5)
        ingest = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.platform.cli",
                "--data-dir",
                str(tmp_path / "data"),
                "ingest",
                str(clip),
                "--title",
                "my-clip",
                "--priority",
                "50",
                "--address",
                address,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, **FAST_ENV},
        )
        assert ingest.returncode == 0, ingest.stderr
        assert "titles/my-clip is playable" in ingest.stdout
        assert "100.0%" in ingest.stderr
        md = admin_metadata(load_config(data_dir=tmp_path / "data"))
        expected = {
            "titles/big-buck-bunny",
            "titles/bikes",
            "titles/test-pattern",
            "titles/counter-pattern",
            "titles/my-clip",
        }
        with grpc.insecure_channel(address) as channel:
            stub = encoding_pb2_grpc.EncodingServiceStub(channel)

            def jobs() -> list[encoding_pb2.EncodingJob]:
                return list(stub.ListEncodingJobs(encoding_pb2.ListEncodingJobsRequest(), metadata=md, timeout=10).jobs)

            def all_encoded() -> bool:
                states = {j.title: j.state for j in jobs()}
                assert not any(s == encoding_pb2.ENCODING_JOB_STATE_FAILED for s in states.values()), states
                return set(states) == expected and all(
                    s == encoding_pb2.ENCODING_JOB_STATE_SUCCEEDED for s in states.values()
                )

            wait_progressing(
                all_encoded, lambda: sorted((j.title, j.state, j.progress.percent) for j in jobs()), "demo encodes"
            )
        for title in expected:
            media = json.loads((origin / title.split("/")[1] / "media.json").read_text())
            assert media["video"], title
        db = load_config(data_dir=tmp_path / "data").sqlite_path

        def counts() -> tuple[int, int]:
            return asyncio.run(_playable_titles(db))

        # the catalog follows encoding.done asynchronously: the MovieLens demo catalog, every title on an encoded
        # demo asset, becomes playable
        wait_progressing(lambda: counts() == (1682, 1682), counts, "demo titles becoming playable")
        _check_edges(endpoints, origin, tmp_path / "data")
    finally:
        code, _, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err


def _check_edges(endpoints: dict[str, Any], origin: Path, data_dir: Path) -> None:
    """Two edges serve the origin's segments (through the shield) only with a signed URL; the shield serves no
    player at all (it takes only the edges' fills, by default)."""
    from marquee.native import TokenKeyring
    from services.common.config import load_config
    from services.platform.runtime import local_config

    edges = {e["label"]: e["address"] for e in endpoints["edge"]}
    assert set(edges) == {"shield", "edge-a", "edge-b"}
    signing = local_config(load_config(data_dir=data_dir)).url_signing
    keyring = TokenKeyring({k: v.get_secret_value().encode() for k, v in signing.keys.items()}, signing.signing_kid)
    token = keyring.sign(["/v/bikes/*"], int(time.time()) + 60)
    rendition = json.loads((origin / "bikes" / "media.json").read_text())["video"][0]["id"]
    key = f"bikes/{rendition}/seg-1.m4s"
    for name in ("edge-a", "edge-b"):
        with urllib.request.urlopen(f"{edges[name]}{key}?token={token}", timeout=10) as reply:
            assert reply.read() == (origin / key).read_bytes()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{edges[name]}{key}", timeout=10)
        assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{edges['shield']}{key}?token={token}", timeout=10)
    assert refused.value.code == 403
    _check_steering(endpoints, data_dir, keyring)


def _check_steering(endpoints: dict[str, Any], data_dir: Path, keyring: Any) -> None:
    """The edges registered with steering, which steers a session onto them (HTTP manifest included), never
    onto the shield."""
    from marquee.v1 import steering_pb2, steering_pb2_grpc
    from services.common.config import load_config
    from services.platform.admin import admin_metadata

    md = admin_metadata(load_config(data_dir=data_dir))
    with grpc.insecure_channel(endpoints["steering"][0]["address"]) as channel:
        stub = steering_pb2_grpc.SteeringServiceStub(channel)
        deadline = time.monotonic() + 20
        while True:
            edges = stub.ListEdges(steering_pb2.ListEdgesRequest(), metadata=md, timeout=10).edges
            if {e.name for e in edges} == {"edges/edge-a", "edges/edge-b", "edges/shield"}:
                break
            assert time.monotonic() < deadline, edges
            time.sleep(0.2)
        request = steering_pb2.GetSteeringRequest(
            session="playbackSessions/up-test", title="titles/bikes", client_address="127.0.0.1"
        )
        answer = stub.GetSteering(request, metadata=md, timeout=10)
        assert {p.id for p in answer.pathways} == {"edge-a", "edge-b"}
    token = keyring.sign(["/steering/*/up-test"], int(time.time()) + 60, "up-test")
    with urllib.request.urlopen(f"{answer.reload_uri}?token={token}", timeout=10) as reply:
        manifest = json.loads(reply.read())
    assert manifest["PATHWAY-PRIORITY"] == [p.id for p in answer.pathways]


async def _playable_titles(db: Path) -> tuple[int, int]:
    """(titles, playable titles) in the catalog store, read through the demo assets' title links."""
    from services.catalog.config import DEMO_MEDIA
    from services.catalog.schema import SCHEMA, TITLES, TITLES_BY_MEDIA
    from services.common.store.sqlite import SqliteStore

    store = SqliteStore(db)
    try:
        await store.migrate(SCHEMA)
        total = playable = 0
        for media_id in DEMO_MEDIA:
            links = await store.query(TITLES_BY_MEDIA, {"media_id": media_id}, limit=5000)
            for link in links.rows:
                row = await store.get(TITLES, {"title_id": link["title_id"]})
                total += 1
                playable += bool(row and row["playable"])
        return total, playable
    finally:
        await store.close()


def test_a_taken_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MARQUEE_METRICS__PORT": str(port), "MARQUEE_LOGGING__LEVEL": "ERROR"}
        cmd = [sys.executable, "-m", "services.platform.cli", "--data-dir", str(tmp_path), "up", "--only", "accounts"]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1
    assert "Address already in use" in out.stderr and "Traceback" not in out.stderr, out.stderr
