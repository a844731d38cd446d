"""Manifest rendering: marquee's Rust renderer vs the Python m3u8 library, same playlists, one run.

The m3u8 side gets its playlist objects built once (parsed from the same text), and only ``dumps()`` is timed:
the fairest comparison, since a Python service would keep the objects and re-render per request. Both sides put
the session token on every URI. Target: at least 20x. Run: ./dev bench manifest_render
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import m3u8

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from marquee.native import Presentation
from tests.native.manifest_samples import description

TOKEN = "v1.k1.4000000000.L3YvZmVhdHVyZS8q.c2Vzcy0x.3q2NEDfMHkzHcgcUa9z8cX2ybAfkBhMYSuEpQWmkg8Y"
PATHWAYS = [("edge-a", "http://127.0.0.1:8081/v/feature/"), ("edge-b", "http://127.0.0.1:8082/v/feature/")]
STEERING = ("http://127.0.0.1:8090/steering/hls?session=s1", "edge-a")


def per_call(fn: Callable[[], object], min_seconds: float = 0.5, repeats: int = 5) -> float:
    """Median seconds per call over ``repeats`` batches of at least ``min_seconds`` each."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start >= min_seconds / 5:
            break
        n *= 2
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples)


def main() -> int:
    pres = Presentation.from_json(json.dumps(description()))
    media_text = pres.hls_media("1080p", token=TOKEN)
    master_text = pres.hls_multivariant(token=TOKEN, pathways=PATHWAYS, steering=STEERING)
    media_obj = m3u8.loads(media_text)
    master_obj = m3u8.loads(master_text)
    assert len(media_obj.segments) == 1800 and len(master_obj.playlists) == 10
    rows = []
    for label, ours, theirs in [
        ("media playlist (1800 segments, token)", lambda: pres.hls_media("1080p", token=TOKEN), media_obj.dumps),
        (
            "multivariant (5 rungs x 2 pathways, steering)",
            lambda: pres.hls_multivariant(token=TOKEN, pathways=PATHWAYS, steering=STEERING),
            master_obj.dumps,
        ),
    ]:
        t_ours, t_theirs = per_call(ours), per_call(theirs)
        rows.append((label, t_ours, t_theirs, t_theirs / t_ours))
    t_dash = per_call(lambda: pres.dash_mpd(token=TOKEN, pathways=PATHWAYS, steering=STEERING))
    print(f"{'playlist':<48} {'marquee (Rust)':>15} {'m3u8 (Python)':>15} {'ratio':>8}")
    for label, a, b, ratio in rows:
        print(f"{label:<48} {a * 1e6:>12.1f} us {b * 1e6:>12.1f} us {ratio:>7.1f}x")
    print(f"{'DASH MPD (6 representations, 1800 segments)':<48} {t_dash * 1e6:>12.1f} us {'(no reference)':>15}")
    worst = min(r[3] for r in rows)
    print(f"target: at least 20x faster than m3u8; worst ratio {worst:.1f}x -> {'MET' if worst >= 20 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
