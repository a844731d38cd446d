"""The title media description (docs/media-description.md), from the packaged files themselves."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from services.encoder.media.cmaf import SegmentFile


def _bandwidths(segments: list[SegmentFile], timescale: int) -> tuple[int, int]:
    """(peak, average) bits/s over the segments, from their sizes and durations."""
    peak = max(seg.size * 8 * timescale / seg.duration for seg in segments)
    total_bits = sum(seg.size for seg in segments) * 8
    total_seconds = sum(seg.duration for seg in segments) / timescale
    return int(peak + 0.5), int(total_bits / total_seconds + 0.5)


def frame_rate_text(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{float(rate):.3f}".rstrip("0").rstrip(".")


def rendition(
    rendition_id: str,
    codecs: str,
    timescale: int,
    segments: list[SegmentFile],
    *,
    video: tuple[int, int, Fraction] | None = None,
    audio: tuple[str, str, int, int] | None = None,
) -> dict[str, Any]:
    peak, average = _bandwidths(segments, timescale)
    out: dict[str, Any] = {"id": rendition_id, "codecs": codecs}
    if video is not None:
        width, height, rate = video
        out |= {"width": width, "height": height, "frame_rate": frame_rate_text(rate)}
    if audio is not None:
        language, name, channels, sample_rate = audio
        out |= {"language": language, "name": name, "channels": channels, "sample_rate": sample_rate}
    segs: list[dict[str, Any]] = []
    for seg in segments:
        entry: dict[str, Any] = {"duration": seg.duration, "size": seg.size}
        if video is not None:
            entry["keyframe"] = list(seg.keyframe)
        segs.append(entry)
    out |= {
        "bandwidth": peak,
        "average_bandwidth": min(average, peak),
        "timescale": timescale,
        "init": "init.mp4",
        "media": "seg-$Number$.m4s",
        "start_number": 1,
        "segments": segs,
    }
    return out


def title(
    title_id: str,
    segment_seconds: float,
    video: list[dict[str, Any]],
    audio: list[dict[str, Any]],
    *,
    thumbnail: str | None,
    trickplay: dict[str, Any] | None,
) -> dict[str, Any]:
    durations = [sum(s["duration"] for s in r["segments"]) / r["timescale"] for r in video + audio]
    doc: dict[str, Any] = {
        "version": 1,
        "title_id": title_id,
        "duration": round(max(durations), 6),
        "segment_duration": segment_seconds,
        "video": video,
        "audio": audio,
    }
    if thumbnail:
        doc["thumbnail"] = thumbnail
    if trickplay:
        doc["trickplay"] = trickplay
    return doc
