"""A real encoded title for the protection tests: the Big Buck Bunny sample clip through the encoder's own pipeline
(one 360p rendition at the encoder's default preset, so High profile with CABAC, and AAC audio)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from services.encoder.media.ladder import Rung
from services.encoder.media.pipeline import EncodedTitle, encode_title
from services.encoder.media.samples import sample_clip

FIXTURES = Path(__file__).resolve().parents[2] / "native" / "core" / "tests" / "fixtures" / "protect"


@dataclass(frozen=True)
class Rendition:
    kind: str  # "video" or "audio"
    init: bytes
    segments: list[bytes]


@pytest.fixture(scope="session")
def title(tmp_path_factory: pytest.TempPathFactory) -> EncodedTitle:
    origin = tmp_path_factory.mktemp("origin")
    return encode_title(sample_clip("bigbuckbunny.mp4"), "bbb", origin, ladder=(Rung("360p", 360, 600_000),))


def renditions(title: EncodedTitle) -> list[Rendition]:
    out = []
    for kind in ("video", "audio"):
        for r in title.description[kind]:
            folder = title.path / r["id"]
            count = len(r["segments"])
            segments = [(folder / f"seg-{n}.m4s").read_bytes() for n in range(1, count + 1)]
            out.append(Rendition(kind, (folder / "init.mp4").read_bytes(), segments))
    return out


@pytest.fixture(scope="session")
def clip(title: EncodedTitle) -> dict[str, Rendition]:
    """The title's video and audio renditions by kind."""
    return {r.kind: r for r in renditions(title)}
