"""`marquee serve NAME`: one service in a process of its own, as a container runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from marquee.v1 import accounts_pb2, accounts_pb2_grpc, catalog_pb2, catalog_pb2_grpc
from services.common.ports import free_port
from tests.platform.test_up import wait_progressing


def _serve(data: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    ready = data / f"{name}.ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.platform.cli",
            "--data-dir",
            str(data),
            "serve",
            name,
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MARQUEE_METRICS__ENABLED": "false", **env},
    )
    return proc, ready


def _wait_ready(proc: subprocess.Popen[str], ready: Path) -> dict[str, list[dict[str, str]]]:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"marquee serve exited: {proc.communicate()}")
        return ready.exists()

    wait_progressing(up, lambda: ready.exists(), "marquee serve starting")
    return dict(json.loads(ready.read_text()))


def test_one_service_runs_alone_and_another_reaches_it_at_its_address(tmp_path: Path) -> None:
    data = tmp_path / "data"
    accounts_port, catalog_port = free_port(), free_port()
    env = {
        "MARQUEE_SERVICES__ACCOUNTS__SERVER__PORT": str(accounts_port),
        "MARQUEE_SERVICES__CATALOG__SERVER__PORT": str(catalog_port),
        "MARQUEE_SERVICES__ACCOUNTS__DEMO__ENABLED": "false",
        "MARQUEE_SERVICES__CATALOG__DEMO__ENABLED": "false",
    }
    accounts, accounts_ready = _serve(data, "accounts", env)
    catalog, catalog_ready = _serve(data, "catalog", env)
    try:
        described = _wait_ready(accounts, accounts_ready)
        assert list(described) == ["accounts"]  # this process runs nothing else
        _wait_ready(catalog, catalog_ready)
        with grpc.insecure_channel(f"127.0.0.1:{accounts_port}") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            signed = accounts_pb2_grpc.AccountServiceStub(channel).SignUp(
                accounts_pb2.SignUpRequest(email="serve@example.com", password="long enough pass"), timeout=10
            )
        # a token from one process's accounts service is good at another process's catalog (shared keys)
        with grpc.insecure_channel(f"127.0.0.1:{catalog_port}") as channel:
            md = (("authorization", f"Bearer {signed.tokens.access_token}"),)
            catalog_pb2_grpc.CatalogServiceStub(channel).ListTitles(catalog_pb2.ListTitlesRequest(), metadata=md)
    finally:
        for proc in (catalog, accounts):
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=60) for proc in (catalog, accounts)]
    assert catalog.returncode == 0 and accounts.returncode == 0, outputs
    _, err = outputs[1]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(line["logger"] == "marquee.access" and line["method"].endswith("/SignUp") for line in lines)


def test_a_service_whose_dependencies_have_no_address_says_which(tmp_path: Path) -> None:
    env = {"MARQUEE_SERVICES__PLAYBACK__SERVER__PORT": str(free_port())}
    proc, _ = _serve(tmp_path / "data", "playback", env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "set addresses.catalog, addresses.steering" in err and "Traceback" not in err, err


def test_an_unknown_service_is_refused(tmp_path: Path) -> None:
    proc, _ = _serve(tmp_path / "data", "no-such-service", {})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "there is no service 'no-such-service'" in err
