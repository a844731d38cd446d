"""`scripts/lock.py runtime` (what the image installs, by hash): the project's dependencies and the ml extra with
all they pull in, and none of the development or build tools."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.image.image import ROOT


def runtime_pins(*args: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lock.py"), "runtime", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+) \\$", out, re.MULTILINE))
    hashed = re.findall(r"^[a-z0-9][a-z0-9._-]*==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}", out, re.MULTILINE)
    assert len(hashed) == len(pins), "every entry keeps its hashes"
    return pins


def test_the_runtime_set_has_what_the_services_import_and_what_that_pulls_in() -> None:
    pins = runtime_pins()
    # direct dependencies, the ml extra, and packages only a dependency pulls in
    assert {"grpcio", "av", "pydantic", "aiohttp", "lightfm"} <= pins.keys()
    assert {"pydantic-core", "yarl", "scikit-learn", "requests"} <= pins.keys()


def test_development_and_build_tools_stay_out() -> None:
    pins = runtime_pins()
    for tool in ("pytest", "ruff", "mypy", "maturin", "uv", "cython", "setuptools", "kubernetes-validate", "m3u8"):
        assert tool not in pins, tool


def test_except_leaves_a_package_out() -> None:
    assert "lightfm" not in runtime_pins("--except", "lightfm")
