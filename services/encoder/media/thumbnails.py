"""The catalog thumbnail and the trick-play sprite sheets with their WebVTT index."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

TILE_W, TILE_H = 160, 90
COLUMNS, ROWS = 10, 10


def write_jpeg(rgb: np.ndarray[Any, Any], path: Path, quality: int = 4) -> None:
    """Encode an RGB array as a baseline JPEG with FFmpeg's mjpeg encoder (qscale ``quality``, 2 = best)."""
    h, w = rgb.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2]), format="rgb24")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = frame.width, frame.height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.qmin = codec.qmax = quality
    packets = codec.encode(frame.reformat(format="yuvj420p")) + codec.encode(None)
    path.write_bytes(b"".join(bytes(p) for p in packets))


def _rgb(frame: Any, width: int, height: int) -> np.ndarray[Any, Any]:
    return np.asarray(frame.reformat(width=width, height=height, format="rgb24").to_ndarray())


def thumbnail(frame: Any, path: Path, width: int = 640) -> None:
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    write_jpeg(_rgb(frame, width, height), path, quality=3)


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def sprites(samples: list[tuple[float, Any]], duration: float, interval: float, out_dir: Path) -> Path:
    """Tile the sampled frames into sheets of COLUMNS x ROWS; returns the WebVTT index path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    per_sheet = COLUMNS * ROWS
    cues = ["WEBVTT", ""]
    for sheet_index in range(0, max(1, (len(samples) + per_sheet - 1) // per_sheet)):
        chunk = samples[sheet_index * per_sheet : (sheet_index + 1) * per_sheet]
        if not chunk:
            break
        rows = (len(chunk) + COLUMNS - 1) // COLUMNS
        cols = min(COLUMNS, len(chunk))
        sheet = np.zeros((rows * TILE_H, cols * TILE_W, 3), dtype=np.uint8)
        name = f"sprites-{sheet_index}.jpg"
        for i, (start, frame) in enumerate(chunk):
            r, c = divmod(i, COLUMNS)
            sheet[r * TILE_H : (r + 1) * TILE_H, c * TILE_W : (c + 1) * TILE_W] = _rgb(frame, TILE_W, TILE_H)
            end = min(duration, start + interval)
            cues += [
                f"{_vtt_time(start)} --> {_vtt_time(end)}",
                f"{name}#xywh={c * TILE_W},{r * TILE_H},{TILE_W},{TILE_H}",
                "",
            ]
        write_jpeg(sheet, out_dir / name)
    vtt = out_dir / "sprites.vtt"
    vtt.write_text("\n".join(cues))
    return vtt
