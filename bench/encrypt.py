"""Packaging-time encryption throughput: marquee's Rust packager vs `openssl enc` on the same bytes, one run.

The bytes are a real title's CMAF segments (Big Buck Bunny through the encoder, 720p and its AAC audio). Each row is
one core: the packager encrypts the segments one after another on one thread (parsing the boxes and the H.264
slice headers, encrypting, writing senc/saiz/saio); openssl encrypts the same bytes, concatenated and repeated to
the same total, from a file to /dev/null, with its start-up time (measured on an empty input) taken off. MB/s is
clear input bytes per second. 'cbcs' encrypts one video block in ten by design, so its rate is not raw AES speed;
the HLS AES-128 row (whole segments in CBC) is the like-for-like CBC comparison.
Run: ./dev bench encrypt
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from marquee.native import CencEncryptor, hls_aes128_encrypt
from services.encoder.media.ladder import Rung
from services.encoder.media.pipeline import encode_title
from services.encoder.media.samples import sample_clip

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
KID = bytes.fromhex("5a4d0c2b9d0e4d1f8e1c7b6a5f4e3d2c")
IV = bytes(16)
TOTAL = 256 * 1024 * 1024  # bytes per measurement, each side
REPEATS = 3


def rendition(folder: Path) -> tuple[bytes, list[bytes]]:
    segments = sorted(folder.glob("seg-*.m4s"), key=lambda p: int(p.stem.split("-")[1]))
    return (folder / "init.mp4").read_bytes(), [p.read_bytes() for p in segments]


def rate(run: Callable[[], int]) -> float:
    """Median MB/s of `run` (which returns the bytes it processed)."""
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        done = run()
        samples.append(done / (time.perf_counter() - start) / 1e6)
    return statistics.median(samples)


def ours(work: list[bytes], encrypt: Callable[[bytes], bytes]) -> float:
    per_pass = sum(len(s) for s in work)
    passes = max(1, TOTAL // per_pass)

    def run() -> int:
        for _ in range(passes):
            for segment in work:
                encrypt(segment)
        return passes * per_pass

    return rate(run)


def openssl(data_file: Path, empty: Path, cipher: str) -> float:
    def wall(path: Path) -> float:
        start = time.perf_counter()
        subprocess.run(
            ["openssl", "enc", f"-{cipher}", "-K", KEY.hex(), "-iv", IV.hex(), "-in", str(path), "-out", "/dev/null"],
            check=True,
        )
        return time.perf_counter() - start

    size = data_file.stat().st_size
    startup = statistics.median(wall(empty) for _ in range(REPEATS))
    return statistics.median(size / max(wall(data_file) - startup, 1e-9) / 1e6 for _ in range(REPEATS))


def main() -> int:
    if shutil.which("openssl") is None:
        print("openssl is not installed (./dev bench installs scripts/apt-bench.txt)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("encoding the sample title (720p + AAC)...", flush=True)
        title = encode_title(
            sample_clip("bigbuckbunny.mp4"), "bbb", work / "origin", ladder=(Rung("720p", 720, 2_500_000),)
        )
        v_init, video = rendition(title.path / "720p")
        a_init, audio = rendition(title.path / "audio-und")
        cenc_v = CencEncryptor(v_init, "cenc", {"video": (KID, KEY)})
        cbcs_v = CencEncryptor(v_init, "cbcs", {"video": (KID, KEY)})
        cenc_a = CencEncryptor(a_init, "cenc", {"audio": (KID, KEY)})
        cbcs_a = CencEncryptor(a_init, "cbcs", {"audio": (KID, KEY)})
        empty = work / "empty"
        empty.write_bytes(b"")
        files = {}
        for name, segments in (("video", video), ("audio", audio)):
            blob = b"".join(segments)
            path = work / f"{name}.bin"
            with path.open("wb") as f:
                for _ in range(max(1, TOTAL // len(blob))):
                    f.write(blob)
            files[name] = path
        v_mb = sum(map(len, video)) / 1e6
        a_mb = sum(map(len, audio)) / 1e6
        print(f"segments: video {len(video)} ({v_mb:.1f} MB), audio {len(audio)} ({a_mb:.2f} MB); one core each row")
        ctr = {kind: openssl(files[kind], empty, "aes-128-ctr") for kind in files}
        cbc = {kind: openssl(files[kind], empty, "aes-128-cbc") for kind in files}
        rows = [
            ("cenc video (subsamples, CTR)", ours(video, cenc_v.encrypt), ctr["video"]),
            ("cenc audio (full sample, CTR)", ours(audio, cenc_a.encrypt), ctr["audio"]),
            ("cbcs video (1:9 pattern, CBC)", ours(video, cbcs_v.encrypt), cbc["video"]),
            ("cbcs audio (whole blocks, CBC)", ours(audio, cbcs_a.encrypt), cbc["audio"]),
            (
                "HLS AES-128 video (whole segment, CBC)",
                ours(video, lambda s: hls_aes128_encrypt(s, KEY, media_sequence=1)),
                cbc["video"],
            ),
        ]
    print(f"{'packager':<40} {'marquee MB/s':>13} {'openssl MB/s':>13} {'ratio':>7}")
    for label, a, b in rows:
        print(f"{label:<40} {a:>13.0f} {b:>13.0f} {a / b:>6.2f}x")
    cenc_ratio = min(rows[0][1] / rows[0][2], rows[1][1] / rows[1][2])
    print(f"cenc (the full-encryption scheme) at {cenc_ratio:.2f}x of openssl enc -aes-128-ctr on the same bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
