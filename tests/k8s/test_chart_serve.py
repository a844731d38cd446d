"""The chart's configuration is what the code reads: the catalog's pod, as the chart renders it for an existing
CQL cluster and Redis (the session's Cassandra node and redis-server), run as a process: the ConfigMap's TOML as
the file at its mount path, the Deployment's environment with each secretKeyRef resolved from the rendered
Secret, the image's environment from the Dockerfile and its volumes as directories, and the container's args
after the image's entrypoint (`marquee`). It reports ready, serves gRPC health on the chart's port and metrics on
the chart's metrics port, and takes an admin token signed with the key of the chart's generated Secret (one
signed otherwise is refused): the rendered Secret, through the MARQUEE_* variables, is the key the service uses."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from marquee.v1 import catalog_pb2, common_pb2
from marquee.v1.catalog_pb2_grpc import CatalogServiceStub
from services.common.auth import AccessTokens
from services.common.config import AuthConfig
from services.common.ports import free_port
from services.common.store.cassandra_node import CassandraNode
from services.platform.localredis import RedisServer
from tests.k8s.chart import find, of_kind, render
from tests.k8s.tools import ROOT, K8sTools

READY_TIMEOUT = 180.0  # seconds: a busy machine starts Python slowly, and the first CQL schema change takes a while


def image_environment() -> dict[str, str]:
    """The runtime stage's ENV of the Dockerfile (what every container of the image starts with)."""
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.index("AS runtime") :]
    block = re.search(r"^ENV (.*?)(?=^\S)", runtime, flags=re.M | re.S)
    assert block is not None
    pairs = re.findall(r"([A-Z_]+)=(\S+)", block.group(1))
    return dict(pairs)


@dataclass
class Pod:
    """A container of a rendered workload, mapped onto this machine: each volume a directory under ``root``."""

    root: Path
    mounts: dict[str, Path]  # container path -> local directory
    env: dict[str, str]
    args: list[str]

    def local(self, path: str) -> str:
        for mount, local in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if path == mount or path.startswith(mount + "/"):
                return str(local) + path[len(mount) :]
        return path


def pod_of(objects: list[dict[str, Any]], deployment: str, root: Path) -> Pod:
    spec = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    [container] = spec["containers"]
    secrets = {s["metadata"]["name"]: s["data"] for s in of_kind(objects, "Secret")}
    config_maps = {c["metadata"]["name"]: c["data"] for c in of_kind(objects, "ConfigMap")}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        local = root / mount["name"]
        local.mkdir(parents=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            for key, text in config_maps[volume["configMap"]["name"]].items():
                (local / key).write_text(text)
        else:
            assert "emptyDir" in volume, f"{mount['name']}: a volume this test cannot stand in for"
        mounts[mount["mountPath"]] = local
    pod = Pod(root, mounts, {}, list(container["args"]))
    env = {k: pod.local(v) if v.startswith("/") else v for k, v in image_environment().items() if k != "PATH"}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = pod.local(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = base64.b64decode(secrets[ref["name"]][ref["key"]]).decode()
    env["TMPDIR"] = str(mounts["/tmp"])  # /tmp is a volume in the pod; here the process's temporary directory
    pod.env = env
    return pod


@pytest.fixture
def catalog_pod(
    tools: K8sTools, cassandra: CassandraNode, redis_server: RedisServer, tmp_path: Path
) -> tuple[Pod, dict[str, Any], list[dict[str, Any]]]:
    values = {
        "scylla": {"enabled": False},
        "externalScylla": {"contactPoints": [cassandra.contact_point], "replicationFactor": 1},
        "redis": {"enabled": False},
        "externalRedis": {"url": redis_server.url},
        "store": {"keyspacePrefix": f"t{uuid.uuid4().hex[:8]}_"},
        "config": {"redisKeyPrefix": f"t{uuid.uuid4().hex[:8]}:"},
        "catalog": {"port": free_port("127.0.0.1")},
        "metrics": {"port": free_port("127.0.0.1")},
        "ingress": {"enabled": False},
    }
    objects = render(tools, values=values, tmp=tmp_path)
    return pod_of(objects, "marquee-catalog", tmp_path / "pod"), values, objects


@pytest.fixture
def running(catalog_pod: tuple[Pod, dict[str, Any], list[dict[str, Any]]]) -> Iterator[tuple[Pod, dict[str, Any]]]:
    pod, values, _ = catalog_pod
    ready = pod.root / "ready.json"
    log = (pod.root / "catalog.log").open("wb")
    # the image's entrypoint is `tini -- marquee`: the container's args follow `marquee`
    argv = [sys.executable, "-m", "services.platform.cli", *pod.args, "--ready-file", str(ready)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MARQUEE_")}
    proc = subprocess.Popen(argv, env={**environ, **pod.env}, stdout=log, stderr=subprocess.STDOUT, cwd=pod.root)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"marquee serve catalog did not start:\n{(pod.root / 'catalog.log').read_text()[-4000:]}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.1)
        yield pod, values
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


def test_the_chart_mounts_what_the_image_and_the_code_expect(
    catalog_pod: tuple[Pod, dict[str, Any], list[dict[str, Any]]],
) -> None:
    pod, _, objects = catalog_pod
    assert pod.args == ["serve", "catalog"]
    assert set(pod.mounts) == {"/etc/marquee", "/tmp", "/var/cache/marquee", "/var/lib/marquee"}
    image = image_environment()
    assert image["MARQUEE_DATA_DIR"] == "/var/lib/marquee" and image["XDG_CACHE_HOME"] == "/var/cache/marquee"
    assert pod.env["MARQUEE_CONFIG"] == str(pod.mounts["/etc/marquee"] / "marquee.toml")
    assert {"MARQUEE_AUTH__KEYS__K1"} <= set(pod.env)
    assert "MARQUEE_REDIS__PASSWORD" not in pod.env  # the external Redis has no password here
    assert "MARQUEE_EDGE_FILL__KEYS__K1" not in pod.env and "MARQUEE_URL_SIGNING__KEYS__K1" not in pod.env
    assert "auth-signing-key" in find(objects, "Secret", "marquee-keys")["data"]


async def test_marquee_serve_runs_on_exactly_what_the_chart_mounts(running: tuple[Pod, dict[str, Any]]) -> None:
    pod, values = running
    described = json.loads((pod.root / "ready.json").read_text())
    assert [e["address"] for e in described["catalog"]] == [f"0.0.0.0:{values['catalog']['port']}"]
    address = f"127.0.0.1:{values['catalog']['port']}"
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "marquee.v1.CatalogService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        # an admin token signed with the key of the chart's Secret is accepted; one signed otherwise is not
        auth = AuthConfig(keys={"k1": SecretStr(pod.env["MARQUEE_AUTH__KEYS__K1"])}, signing_kid="k1")
        forged = AuthConfig(keys={"k1": SecretStr("x" * 48)}, signing_kid="k1")
        stub = CatalogServiceStub(channel)
        title = catalog_pb2.Title(
            display_name="Rendered by the chart",
            type=catalog_pb2.TITLE_TYPE_MOVIE,
            maturity_rating=common_pb2.MATURITY_RATING_PG,
            genres=["Drama"],
            release_year=2026,
        )
        bad = AccessTokens(forged).issue("ops", roles=["admin"]).token
        forged_call = stub.CreateTitle(
            catalog_pb2.CreateTitleRequest(title=title), metadata=[("authorization", f"Bearer {bad}")]
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await forged_call
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        token = AccessTokens(auth).issue("ops", roles=["admin"]).token
        metadata = [("authorization", f"Bearer {token}")]
        created = (await stub.CreateTitle(catalog_pb2.CreateTitleRequest(title=title), metadata=metadata)).title
        got = await stub.GetTitle(catalog_pb2.GetTitleRequest(name=created.name), metadata=metadata, timeout=10)
        assert got.title.display_name == "Rendered by the chart"
    text = await asyncio.to_thread(_get, f"http://127.0.0.1:{values['metrics']['port']}/metrics")
    assert 'marquee_grpc_server_handled_total{grpc_code="OK",grpc_method="CreateTitle"' in text


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())
