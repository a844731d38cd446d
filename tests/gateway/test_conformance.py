"""The Connect conformance suite's gRPC-web server tests against the gateway (scripts/conformance.sh; the
connectconformance build is cached in .cache/bin, so this takes seconds after the first run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_connect_conformance_grpc_web_server_suite() -> None:
    assert shutil.which("go"), "Go is required to build connectconformance (see README)"
    run = subprocess.run(
        [str(ROOT / "scripts" / "conformance.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
        cwd=ROOT,
    )
    output = run.stdout + run.stderr
    counts = re.search(r"Total cases: (\d+)\n(\d+) passed, (\d+) failed", output)
    assert counts is not None, output[-4000:]
    total, passed, failed = (int(g) for g in counts.groups())
    assert run.returncode == 0 and failed == 0, output[-4000:]
    # every case of the configured features ran (a config change that drops cases shows here)
    assert total == passed >= 170, output[-4000:]
