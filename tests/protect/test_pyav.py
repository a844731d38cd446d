"""What a decoder makes of the protected media: PyAV (FFmpeg) cannot decode it without the key, decodes the
reference-decrypted files exactly as the clear ones, and, given the key, FFmpeg's own CENC decryption in its MP4
reader (an implementation independent of ours) decodes our output exactly as the clear source."""

from __future__ import annotations

import hashlib
import io

import av
import av.error
import pytest

from marquee.native import CencEncryptor
from tests.protect import reference
from tests.protect.conftest import Rendition
from tests.protect.titles import TEST_KEYS


def decode(data: bytes, kind: str, options: dict[str, str] | None = None) -> list[str] | None:
    """A digest of every decoded frame, or None when FFmpeg refuses the stream."""
    try:
        with av.open(io.BytesIO(data), "r", options=options or {}) as container:
            stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
            out = []
            for frame in container.decode(stream):
                assert isinstance(frame, av.VideoFrame | av.AudioFrame)
                out.append(hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest())
            return out
    except av.error.FFmpegError:
        return None


def whole(init: bytes, segments: list[bytes]) -> bytes:
    return init + b"".join(segments)


@pytest.fixture(scope="module")
def clear_frames(clip: dict[str, Rendition]) -> dict[str, list[str]]:
    frames = {}
    for kind, r in clip.items():
        decoded = decode(whole(r.init, r.segments), kind)
        assert decoded, f"the clear {kind} does not decode"
        frames[kind] = decoded
    return frames


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_no_key_no_picture_or_sound(
    clip: dict[str, Rendition], clear_frames: dict[str, list[str]], kind: str, scheme: str
) -> None:
    r = clip[kind]
    enc = CencEncryptor(r.init, scheme, {kind: TEST_KEYS[kind]})
    protected = whole(enc.init_segment, [enc.encrypt(s) for s in r.segments])
    frames = decode(protected, kind)
    assert frames is None or frames != clear_frames[kind]
    if frames is not None:
        # whatever FFmpeg made of it, hardly any frame is the real one
        same = sum(a == b for a, b in zip(frames, clear_frames[kind], strict=False))
        assert same <= len(clear_frames[kind]) // 10


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_reference_decrypted_decodes_like_the_clear(
    clip: dict[str, Rendition], clear_frames: dict[str, list[str]], kind: str, scheme: str
) -> None:
    r = clip[kind]
    kid, key = TEST_KEYS[kind]
    enc = CencEncryptor(r.init, scheme, {kind: (kid, key)})
    init = reference.parse_init(enc.init_segment)
    segments = [reference.decrypt_segment(enc.encrypt(s), init, {kid: key}) for s in r.segments]
    assert decode(whole(reference.clear_init(enc.init_segment), segments), kind) == clear_frames[kind]


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_ffmpeg_decrypts_our_output_with_the_key(
    clip: dict[str, Rendition], clear_frames: dict[str, list[str]], kind: str, scheme: str
) -> None:
    r = clip[kind]
    kid, key = TEST_KEYS[kind]
    enc = CencEncryptor(r.init, scheme, {kind: (kid, key)})
    protected = whole(enc.init_segment, [enc.encrypt(s) for s in r.segments])
    assert decode(protected, kind, {"decryption_key": key.hex()}) == clear_frames[kind]
