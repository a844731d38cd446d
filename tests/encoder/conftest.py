"""Sources for encoder tests, made with PyAV from FFmpeg's lavfi test patterns, plus one real clip."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from services.encoder.media.pipeline import EncodedTitle, encode_title


def make_source(path: Path, *, width: int, height: int, seconds: float, rate: int = 25, audio: bool = True) -> Path:
    """An H.264 (+ AAC) file of a moving test pattern and a tone."""
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "crf": "18"})
    vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
    aus = None
    if audio:
        aus = out.add_stream("aac", rate=44100)
        aus.layout = "stereo"
    with av.open(f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}", format="lavfi") as src:
        for frame in src.decode(video=0):
            for packet in vs.encode(frame):
                out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)
    if aus is not None:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44100)
        with av.open(f"sine=frequency=440:sample_rate=44100:duration={seconds}", format="lavfi") as src:
            for aframe in src.decode(audio=0):
                for rf in resampler.resample(aframe):
                    for packet in aus.encode(rf):
                        out.mux(packet)
        for packet in aus.encode(None):
            out.mux(packet)
    out.close()
    return path


def make_audio_only(path: Path, seconds: float = 3) -> Path:
    out = av.open(str(path), "w")
    aus = out.add_stream("aac", rate=48000)
    aus.layout = "stereo"
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
    with av.open(f"sine=frequency=220:sample_rate=48000:duration={seconds}", format="lavfi") as src:
        for frame in src.decode(audio=0):
            for rf in resampler.resample(frame):
                for packet in aus.encode(rf):
                    out.mux(packet)
    for packet in aus.encode(None):
        out.mux(packet)
    out.close()
    return path


@pytest.fixture(scope="session")
def source_480p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "master.mp4", width=854, height=480, seconds=10.5)


@pytest.fixture(scope="session")
def encoded(source_480p: Path, tmp_path_factory: pytest.TempPathFactory) -> EncodedTitle:
    origin = tmp_path_factory.mktemp("origin")
    return encode_title(source_480p, "pattern", origin, preset="ultrafast")


FRAME_RATE = Fraction(25)
