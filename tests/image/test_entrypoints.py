"""The image's entrypoint commands, run the way the image runs them (tests/image/image.py): as user 10001 under
tini, on a read-only root filesystem, with Marquee from the wheel in /opt/marquee and no source tree. `marquee`
and `python -m edge` start, a service serves (the gateway, with the web player the wheel carries), only the
volumes are writable, and the image has no compiler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.image.image import IMAGE_ENV, ROOT, Image, Wheels, snapshot

pytestmark = pytest.mark.slow


def test_the_wheel_carries_the_packages_the_native_module_and_the_player(wheels: Wheels) -> None:
    names = set(zipfile.ZipFile(wheels.marquee).namelist())
    assert {"services/platform/cli.py", "edge/__main__.py", "ml/models.py", "marquee/v1/catalog_pb2.py"} <= names
    assert any(n.startswith("marquee/_native") and n.endswith(".so") for n in names)
    assert "web/dist/index.html" in names
    assert not any(n.startswith(("tests/", "bench/", "native/", "scripts/")) for n in names)


def test_marquee_runs_as_the_image_user_under_tini_from_the_installation(image: Image, data: Path) -> None:
    modules = ("edge", "marquee._native", "ml", "services")
    code = (
        "import os, sys, " + ", ".join(modules) + "; "
        "print(os.getuid(), os.getgid(), open('/proc/1/comm').read().strip(), sys.version_info[:2]); "
        "print(" + ", ".join(f"{m}.__file__" for m in modules) + ")"
    )
    out = image.run("python", "-c", code, data=data)
    assert out.returncode == 0, out.stderr
    ids, files = out.stdout.splitlines()
    assert ids == "10001 10001 tini (3, 11)"
    assert all(path.startswith("/opt/marquee/lib/python3.11/site-packages/") for path in files.split()), files


def test_marquee_and_python_m_edge_start(image: Image, data: Path) -> None:
    marquee = image.run("marquee", "--help", data=data)
    assert marquee.returncode == 0, marquee.stderr
    assert "Marquee video streaming platform" in marquee.stdout and "up" in marquee.stdout
    edge = image.run("python", "-m", "edge", "--help", data=data)
    assert edge.returncode == 0, edge.stderr
    assert "--upstream" in edge.stdout


def test_only_the_volumes_are_writable_and_there_is_no_compiler(image: Image, data: Path) -> None:
    script = (
        "touch /opt/marquee/x; touch /etc/x; "
        "touch /var/lib/marquee/x /var/cache/marquee/x /tmp/x && echo volumes writable; "
        "command -v cc gcc pip || echo no compiler"
    )
    out = image.run("sh", "-c", script, data=data)
    assert "cannot touch '/opt/marquee/x': Read-only file system" in out.stderr
    assert "cannot touch '/etc/x': Read-only file system" in out.stderr
    assert out.stdout.splitlines() == ["volumes writable", "no compiler"]
    assert (data / "x").exists()


def test_a_service_serves_from_the_image_and_writes_only_its_volumes(image: Image, data: Path) -> None:
    """The gateway alone (`marquee up --only gateway`) serves the player the wheel carries, byte for byte the
    build in web/dist; it stops on SIGTERM to tini (what the kubelet sends), exit status 0, and wrote its data
    directory and nothing in the installation."""
    before = snapshot(image.opt)
    argv = image.command(
        "marquee",
        "up",
        "--only",
        "gateway",
        "--ephemeral-ports",
        "--ready-file",
        "/var/lib/marquee/ready.json",
        data=data,
    )
    proc = subprocess.Popen(
        argv,
        env={**IMAGE_ENV, "MARQUEE_LOGGING__LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = data / "ready.json"
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the gateway did not report ready"
            time.sleep(0.1)
        endpoints = json.loads(ready.read_text())
        url = next(e["address"] for e in endpoints["gateway"] if e["kind"] == "http").rstrip("/")
        with urllib.request.urlopen(url + "/", timeout=10) as response:
            served = response.read()
        assert served == (ROOT / "web" / "dist" / "index.html").read_bytes()
    finally:
        tini = _tini(proc.pid)
        if tini is not None:
            os.kill(tini, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Marquee stopped." in out
    assert snapshot(image.opt) == before


def _tini(unshare: int) -> int | None:
    """The host PID of unshare's child: tini, PID 1 of the image's PID namespace."""
    try:
        children = Path(f"/proc/{unshare}/task/{unshare}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None
