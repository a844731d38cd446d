"""Ladder encode speed: marquee's pipeline (PyAV, decode once) vs the ffmpeg command line doing the same ladder,
preset and 4 s fMP4 segmentation in one process, on the same sources, in one run. Prints realtime factors and
the ratio. Run: ./dev bench encode_ladder [--seconds 60] [--preset veryfast]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.encoder.demo import make_master
from services.encoder.media.ladder import select_ladder
from services.encoder.media.pipeline import encode_title
from services.encoder.media.samples import sample_clip
from services.encoder.media.transcode import gop_frames, probe


def ffmpeg_ladder(source: Path, out: Path, preset: str) -> float:
    """The same ladder with the ffmpeg CLI: one decode, split + scale, libx264, AAC, 4 s fMP4 HLS segments."""
    info = probe(source)
    rungs = select_ladder(info.width, info.height)
    gop = gop_frames(info.frame_rate, 4.0)
    n = len(rungs)
    split = f"[0:v]split={n}" + "".join(f"[s{i}]" for i in range(n)) + ";"
    scales = ";".join(f"[s{i}]scale={r.width}:{r.height}[v{i}]" for i, r in enumerate(rungs))
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-filter_complex", split + scales]
    for i, r in enumerate(rungs):
        cmd += [
            "-map",
            f"[v{i}]",
            f"-c:v:{i}",
            "libx264",
            f"-b:v:{i}",
            str(r.rung.video_bitrate),
            f"-maxrate:v:{i}",
            str(r.rung.maxrate),
            f"-bufsize:v:{i}",
            str(r.rung.bufsize),
        ]
    stream_map = [f"v:{i},agroup:aud" for i in range(n)]
    if info.has_audio:
        cmd += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]
        stream_map.append("a:0,agroup:aud")
    cmd += [
        "-preset",
        preset,
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-x264-params",
        f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:bframes=0",
        "-f",
        "hls",
        "-hls_time",
        "4",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-var_stream_map",
        " ".join(stream_map),
        "-master_pl_name",
        "master.m3u8",
        "-hls_segment_filename",
        str(out / "%v" / "seg-%d.m4s"),
        str(out / "%v" / "index.m3u8"),
    ]
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic 720p master")
    parser.add_argument("--preset", default="veryfast")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is not installed (apt-get install ffmpeg); ./dev bench installs it", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sources = [
            ("synthetic 720p (testsrc2)", make_master(work / "synthetic.mp4", "testsrc2", 1280, 720, args.seconds)),
            ("bigbuckbunny 720p (real)", sample_clip("bigbuckbunny.mp4")),
        ]
        print(f"preset {args.preset}; ladder: every default rung at or below the source; 4 s segments")
        print(f"{'source':<28} {'media s':>8} {'marquee x':>10} {'ffmpeg x':>9} {'ratio':>7}")
        for label, source in sources:
            duration = probe(source).duration
            start = time.perf_counter()
            encode_title(source, "bench", work / "ours", preset=args.preset)
            ours = time.perf_counter() - start
            theirs = ffmpeg_ladder(source, work / "ffmpeg", args.preset)
            print(
                f"{label:<28} {duration:>8.1f} {duration / ours:>9.2f}x {duration / theirs:>8.2f}x "
                f"{theirs / ours:>6.2f}x"
            )
            shutil.rmtree(work / "ours")
            shutil.rmtree(work / "ffmpeg")
    print("ratio = marquee realtime factor / ffmpeg realtime factor (above 1.0: marquee is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
