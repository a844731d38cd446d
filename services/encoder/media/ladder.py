"""Bitrate ladders as data: the default ladder, and the choice of rungs for one title (never upscaling)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rung:
    """One rendition of the ladder: its name (the rendition id), height and H.264 bitrates (bits/s)."""

    name: str
    height: int
    video_bitrate: int
    max_bitrate: int | None = None  # VBV cap; default 107% of the target
    buffer_size: int | None = None  # VBV buffer; default 2 s of the target

    @property
    def maxrate(self) -> int:
        return self.max_bitrate or int(self.video_bitrate * 1.07)

    @property
    def bufsize(self) -> int:
        return self.buffer_size or self.video_bitrate * 2


# The original design's ladder.
DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung("2160p", 2160, 25_000_000),
    Rung("1080p", 1080, 5_000_000),
    Rung("720p", 720, 2_500_000),
    Rung("480p", 480, 1_000_000),
    Rung("360p", 360, 500_000),
)


@dataclass(frozen=True)
class PlannedRung:
    rung: Rung
    width: int
    height: int


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def select_ladder(
    source_width: int, source_height: int, ladder: tuple[Rung, ...] = DEFAULT_LADDER
) -> list[PlannedRung]:
    """The rungs at or below the source height, highest first, widths following the source aspect ratio.

    A source shorter than every rung gets one rung at its own height with the lowest rung's bitrate."""
    if source_width <= 0 or source_height <= 0:
        raise ValueError("source dimensions must be positive")
    aspect = source_width / source_height
    chosen = sorted((r for r in ladder if r.height <= source_height), key=lambda r: -r.height)
    if not chosen:
        lowest = min(ladder, key=lambda r: r.height)
        h = _even(source_height)
        chosen = [Rung(f"{h}p", h, lowest.video_bitrate, lowest.max_bitrate, lowest.buffer_size)]
    return [PlannedRung(r, _even(r.height * aspect), _even(r.height)) for r in chosen]
