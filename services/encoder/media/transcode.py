"""Decode the master once; encode every rung (libx264, closed GOPs, a keyframe exactly every segment) and the
audio (AAC-LC) into fragmented MP4 files, one per rendition; hand sampled frames to the thumbnail writer."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import av.video.reformatter

from services.encoder.media.errors import EncodeCancelled, MediaError, SourceError
from services.encoder.media.ladder import PlannedRung

KEY = av.video.frame.PictureType.I
ANY = av.video.frame.PictureType.NONE
AUDIO_RATE = 48_000
AUDIO_BITRATE = 128_000
VIDEO_MOVFLAGS = "+frag_keyframe+empty_moov+default_base_moof"
AUDIO_MOVFLAGS = "+empty_moov+default_base_moof"


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    frame_rate: Fraction
    duration: float  # seconds
    has_audio: bool


@dataclass(frozen=True)
class Progress:
    percent: float
    phase: str  # "encode", "package", ...
    speed: float  # media seconds per wall second


@dataclass
class TranscodeResult:
    video: dict[str, Path]  # rung name -> fragmented mp4
    audio: Path | None
    frames: int
    sampled: list[tuple[float, Any]] = field(default_factory=list)  # (seconds, VideoFrame) for thumbnails


def probe(source: Path) -> SourceInfo:
    """What the master is; SourceError with the reason when it cannot be used."""
    if not source.is_file():
        raise SourceError(f"source {source} does not exist or is not a file")
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise SourceError("the source has no video stream")
            v = container.streams.video[0]
            width, height = v.codec_context.width, v.codec_context.height
            rate = v.average_rate or v.guessed_rate
            if not width or not height or not rate:
                raise SourceError("the source's video stream has no size or frame rate")
            duration = 0.0
            if v.duration is not None and v.time_base is not None:
                duration = float(v.duration * v.time_base)
            if duration <= 0 and container.duration:
                duration = container.duration / 1_000_000
            if duration <= 0:
                raise SourceError("the source's duration is unknown or zero")
            return SourceInfo(int(width), int(height), Fraction(rate), duration, bool(container.streams.audio))
    except av.error.FFmpegError as exc:
        raise SourceError(f"the source cannot be read as media: {exc}") from exc


def gop_frames(rate: Fraction, segment_seconds: float) -> int:
    """Frames per segment; the segment length is kept when the rate allows an integer count."""
    return max(1, round(rate * Fraction(segment_seconds).limit_denominator(1000)))


def _video_stream(out: Any, planned: PlannedRung, rate: Fraction, gop: int, preset: str, threads: int) -> Any:
    # bframes=0: presentation starts at exactly 0 in every rung (no composition delay to shift A/V by a frame)
    x264 = f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:bframes=0:rc-lookahead={min(gop, 40)}"
    stream = out.add_stream(
        "libx264",
        rate=rate,
        options={
            "preset": preset,
            "profile": "high",
            "x264-params": x264,
            "maxrate": str(planned.rung.maxrate),
            "bufsize": str(planned.rung.bufsize),
            "forced-idr": "1",
        },
    )
    stream.width = planned.width
    stream.height = planned.height
    stream.pix_fmt = "yuv420p"
    stream.bit_rate = planned.rung.video_bitrate
    stream.time_base = Fraction(1, 1) / rate
    stream.codec_context.gop_size = gop
    stream.codec_context.thread_count = threads
    return stream


class _RungEncoder:
    """Scales and encodes one rung on its own thread (PyAV releases the GIL in swscale and libx264), fed in
    order through a bounded queue, so the rungs of a ladder encode in parallel like ffmpeg's filter graph."""

    def __init__(self, planned: PlannedRung, stream: Any, output: Any, gop: int, frame_tb: Fraction) -> None:
        self._planned = planned
        self._stream = stream
        self._output = output
        self._gop = gop
        self._tb = frame_tb
        self._queue: queue.Queue[tuple[Any, int] | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._aborted = False
        # a scaler of its own: VideoFrame.reformat caches one on the shared source frame, unsafe across threads
        self._scaler = av.video.reformatter.VideoReformatter()
        self._thread = threading.Thread(target=self._loop, name=f"encode-{planned.rung.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if self._aborted:
                    return
                if item is None:
                    for packet in self._stream.encode(None):
                        self._output.mux(packet)
                    return
                frame, index = item
                p = self._planned
                scaled = self._scaler.reformat(frame, width=p.width, height=p.height, format="yuv420p", threads=1)
                scaled.pts = index
                scaled.time_base = self._tb
                # a keyframe exactly at every segment boundary, and the encoder's choice elsewhere
                # (decoded frames carry the source's picture types, which must not leak through)
                scaled.pict_type = KEY if index % self._gop == 0 else ANY
                for packet in self._stream.encode(scaled):
                    self._output.mux(packet)
        except BaseException as exc:  # reported to the feeding thread
            self._error = exc
            while True:  # drain so the feeder never blocks on a dead consumer
                try:
                    if self._queue.get_nowait() is None:
                        return
                except queue.Empty:
                    return

    def _check(self) -> None:
        if self._error is not None:
            raise MediaError(f"encoding {self._planned.rung.name} failed: {self._error}") from self._error

    def put(self, frame: Any, index: int) -> None:
        self._check()
        self._queue.put((frame, index))

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._check()

    def abort(self) -> None:
        """Stop the thread if still running (after an error or a cancel elsewhere): pending frames are dropped."""
        if not self._thread.is_alive():
            return
        self._aborted = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=30)


def transcode(
    source: Path,
    info: SourceInfo,
    rungs: list[PlannedRung],
    work: Path,
    *,
    segment_seconds: float = 4.0,
    preset: str = "veryfast",
    threads: int = 0,
    sample_times: list[float] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> TranscodeResult:
    """Encode every rung and the audio in one pass over the decoded master."""
    work.mkdir(parents=True, exist_ok=True)
    gop = gop_frames(info.frame_rate, segment_seconds)
    frame_tb = Fraction(1, 1) / info.frame_rate
    outputs: dict[str, Any] = {}
    streams: dict[str, Any] = {}
    paths = {p.rung.name: work / f"{p.rung.name}.mp4" for p in rungs}
    for p in rungs:
        out = av.open(str(paths[p.rung.name]), mode="w", format="mp4", options={"movflags": VIDEO_MOVFLAGS})
        outputs[p.rung.name] = out
        streams[p.rung.name] = _video_stream(out, p, info.frame_rate, gop, preset, threads)
    audio_path = work / "audio.mp4" if info.has_audio else None
    audio_out: Any = None
    audio_stream: Any = None
    resampler: Any = None
    if audio_path is not None:
        audio_out = av.open(
            str(audio_path),
            mode="w",
            format="mp4",
            options={"movflags": AUDIO_MOVFLAGS, "frag_duration": str(int(segment_seconds * 1_000_000))},
        )
        audio_stream = audio_out.add_stream("aac", rate=AUDIO_RATE, options={"profile": "aac_low"})
        audio_stream.bit_rate = AUDIO_BITRATE
        audio_stream.layout = "stereo"
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
    encoders = [_RungEncoder(p, streams[p.rung.name], outputs[p.rung.name], gop, frame_tb) for p in rungs]
    pending_samples = sorted(sample_times or [])
    sampled: list[tuple[float, Any]] = []
    frames = 0
    started = time.monotonic()
    last_report = 0.0
    try:
        with av.open(str(source)) as container:
            selected: list[Any] = [container.streams.video[0]]
            if audio_out is not None:
                selected.append(container.streams.audio[0])
            for packet in container.demux(*selected):
                for frame in packet.decode():
                    if should_cancel is not None and should_cancel():
                        raise EncodeCancelled("the job was cancelled")
                    if isinstance(frame, av.AudioFrame):
                        if resampler is not None and audio_stream is not None and audio_out is not None:
                            for rf in resampler.resample(frame):
                                for out_packet in audio_stream.encode(rf):
                                    audio_out.mux(out_packet)
                        continue
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    seconds = frames / info.frame_rate
                    for encoder in encoders:
                        encoder.put(frame, frames)
                    while pending_samples and float(seconds) >= pending_samples[0]:
                        sampled.append((pending_samples.pop(0), frame.reformat(format="rgb24")))
                    frames += 1
                    now = time.monotonic()
                    if on_progress is not None and now - last_report >= 0.5:
                        last_report = now
                        media = float(seconds)
                        on_progress(
                            Progress(
                                min(99.0, 100.0 * media / info.duration), "encode", media / max(now - started, 1e-6)
                            )
                        )
            if frames == 0:
                raise SourceError("the source's video stream has no decodable frames")
            for encoder in encoders:
                encoder.finish()
            if audio_stream is not None and audio_out is not None and resampler is not None:
                for rf in resampler.resample(None):
                    for out_packet in audio_stream.encode(rf):
                        audio_out.mux(out_packet)
                for out_packet in audio_stream.encode(None):
                    audio_out.mux(out_packet)
    except av.error.FFmpegError as exc:
        raise SourceError(f"decoding the source failed at frame {frames}: {exc}") from exc
    finally:
        for encoder in encoders:
            encoder.abort()
        for out in outputs.values():
            out.close()
        if audio_out is not None:
            audio_out.close()
    return TranscodeResult(video=paths, audio=audio_path, frames=frames, sampled=sampled)
