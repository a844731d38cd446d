"""Realistic media descriptions for manifest tests and benchmarks."""

from __future__ import annotations

import json
from typing import Any

LADDER = [  # name, width, height, kbit/s, profile-level codecs
    ("2160p", 3840, 2160, 25000, "avc1.640033"),
    ("1080p", 1920, 1080, 5000, "avc1.640028"),
    ("720p", 1280, 720, 2500, "avc1.64001f"),
    ("480p", 854, 480, 1000, "avc1.64001e"),
    ("360p", 640, 360, 500, "avc1.64001e"),
]


def description(title_id: str = "feature", seconds: float = 7200.0 - 1.36) -> dict[str, Any]:
    """A title of ``seconds`` in 4 s segments (a shorter last one), 5 video rungs and one audio rendition."""
    full, rest = divmod(seconds, 4.0)
    n = int(full) + (1 if rest > 1e-9 else 0)
    video = []
    for name, w, h, kbps, codecs in LADDER:
        ts = 12800
        durs = [4 * ts] * int(full) + ([round(rest * ts)] if rest > 1e-9 else [])
        sizes = [int(kbps * 1000 / 8 * d / ts * (0.9 + 0.2 * ((i * 7919) % 10) / 10)) for i, d in enumerate(durs)]
        segs = [
            {"duration": d, "size": size, "keyframe": [0, 2000 + kbps * 3]} for d, size in zip(durs, sizes, strict=True)
        ]
        peak = max(size * 8 * ts // d for size, d in zip(sizes, durs, strict=True))
        avg = sum(sizes) * 8 * ts // sum(durs)
        video.append(
            {
                "id": name,
                "codecs": codecs,
                "width": w,
                "height": h,
                "frame_rate": "25",
                "bandwidth": peak,
                "average_bandwidth": avg,
                "timescale": ts,
                "init": "init.mp4",
                "media": "seg-$Number$.m4s",
                "start_number": 1,
                "segments": segs,
            }
        )
    ats = 48000
    adurs = [4 * ats] * int(full) + ([round(rest * ats)] if rest > 1e-9 else [])
    audio = [
        {
            "id": "audio-en",
            "codecs": "mp4a.40.2",
            "language": "en",
            "name": "English",
            "channels": 2,
            "sample_rate": 48000,
            "bandwidth": 131000,
            "average_bandwidth": 128000,
            "timescale": ats,
            "init": "init.mp4",
            "media": "seg-$Number$.m4s",
            "start_number": 1,
            "segments": [{"duration": d, "size": d * 16000 // ats} for d in adurs],
        }
    ]
    if len(adurs) != n:
        raise AssertionError("audio and video segment counts differ")
    return {
        "version": 1,
        "title_id": title_id,
        "duration": seconds,
        "segment_duration": 4.0,
        "video": video,
        "audio": audio,
    }


def description_json(**kwargs: Any) -> str:
    return json.dumps(description(**kwargs))
