"""The Python lock (requirements.lock, scripts/lock.py): ./dev installs exactly it, and `./dev test` fails when it
no longer matches pyproject.toml. An unpinned setuptools once moved to 84 and broke every fresh install."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import lock

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = (ROOT / "pyproject.toml").read_text()
LOCK = (ROOT / "requirements.lock").read_text()


def test_the_lock_matches_pyproject() -> None:
    assert lock.problems(PYPROJECT, LOCK) == []


def test_the_environment_is_exactly_the_lock() -> None:
    """Every installed distribution is a lock entry at its pinned version, and every entry is installed."""
    pinned = {e.name: e.version for e in lock.parse_lock(LOCK)}
    installed = {
        lock.canonical(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if lock.canonical(d.metadata["Name"]) != "marquee"  # the project itself (maturin develop)
    }
    assert installed == pinned
    assert pinned["setuptools"].split(".")[0] == "79"  # LightFM 1.17 does not build under setuptools 80+


def test_a_changed_requirement_makes_the_lock_stale() -> None:
    newer = PYPROJECT.replace('"setuptools>=70,<80"', '"setuptools>=84"')
    assert newer != PYPROJECT
    found = lock.problems(newer, LOCK)
    assert any("other inputs" in p for p in found)
    assert any("'setuptools>=84'" in p and "setuptools==79" in p for p in found)


def test_a_hand_edited_lock_is_refused() -> None:
    entry = next(e for e in lock.parse_lock(LOCK) if e.name == "setuptools")
    bumped = LOCK.replace(entry.text, "setuptools==84.2.1")
    found = lock.problems(PYPROJECT, bumped)
    assert any("setuptools==84.2.1 has no hashes" in p for p in found)
    assert any("not met by setuptools==84.2.1" in p for p in found)


def test_the_installer_refuses_a_newer_setuptools_under_the_locked_hashes(tmp_path: Path) -> None:
    """A version swapped in under the lock's hashes cannot be installed: uv checks the hash of what it downloads."""
    entry = next(e for e in lock.parse_lock(LOCK) if e.name == "setuptools")
    swapped = tmp_path / "swapped.txt"
    swapped.write_text(re.sub(r"^setuptools==\S+", "setuptools==84.2.1", entry.text))
    uv = Path(sys.executable).parent / "uv"
    result = subprocess.run(
        [str(uv), "pip", "install", "--require-hashes", "--no-deps", "--python", sys.executable,
         "--target", str(tmp_path / "t"), "-r", str(swapped)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "hash" in result.stderr.lower(), result.stderr


@pytest.mark.parametrize("entry", ["only", "except"])
def test_lock_entries_can_be_split_for_the_staged_install(entry: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lock.py"), entry, "lightfm"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {lock.canonical(m) for m in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", result.stdout, re.M)}
    assert ("lightfm" in names) == (entry == "only")
    assert all("--hash=sha256:" in block for block in result.stdout.split("==")[1:])
