"""The encode, checked by decoding every rendition back with PyAV."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import av
import m3u8
import pytest

from marquee.native import Presentation
from services.encoder.media.errors import EncodeCancelled, SourceError
from services.encoder.media.ladder import DEFAULT_LADDER, Rung, select_ladder
from services.encoder.media.pipeline import STAGING, EncodedTitle, encode_title
from services.encoder.media.samples import sample_clip
from tests.encoder.conftest import make_audio_only, make_source

TARGETS = {r.name: r.video_bitrate for r in DEFAULT_LADDER}


def _decode(files: list[Path]) -> list[Any]:
    """Decoded video frames of init + segments concatenated (what a player's MSE buffer sees)."""
    data = b"".join(f.read_bytes() for f in files)
    tmp = files[0].parent / ".joined.mp4"
    tmp.write_bytes(data)
    try:
        with av.open(str(tmp)) as c:
            return list(c.decode(video=0))
    finally:
        tmp.unlink()


def _rendition(encoded: EncodedTitle, rid: str) -> dict[str, Any]:
    return next(r for r in encoded.description["video"] + encoded.description["audio"] if r["id"] == rid)


def test_ladder_never_upscales(encoded: EncodedTitle) -> None:
    assert [v["id"] for v in encoded.description["video"]] == ["480p", "360p"]
    assert [(v["width"], v["height"]) for v in encoded.description["video"]] == [(854, 480), (640, 360)]


def test_layout_and_description_match_the_files(encoded: EncodedTitle) -> None:
    root = encoded.path
    on_disk = json.loads((root / "media.json").read_text())
    assert on_disk == encoded.description
    for r in on_disk["video"] + on_disk["audio"]:
        assert (root / r["id"] / "init.mp4").is_file()
        for n, seg in enumerate(r["segments"], start=1):
            path = root / r["id"] / f"seg-{n}.m4s"
            assert path.stat().st_size == seg["size"]
        assert not (root / r["id"] / f"seg-{len(r['segments']) + 1}.m4s").exists()
    assert (root / "thumbnail.jpg").read_bytes()[:2] == b"\xff\xd8"
    vtt = (root / "trickplay" / "sprites.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "sprites-0.jpg#xywh=0,0,160,90" in vtt
    assert not (root.parent / STAGING).exists()


def test_every_rung_decodes_with_aligned_keyframes(encoded: EncodedTitle) -> None:
    for v in encoded.description["video"]:
        d = encoded.path / v["id"]
        segs = sorted(d.glob("seg-*.m4s"), key=lambda p: int(p.stem.split("-")[1]))
        frames = _decode([d / "init.mp4", *segs])
        assert len(frames) == 263  # lavfi makes 10.52 s at 25 fps
        assert {(f.width, f.height) for f in frames} == {(v["width"], v["height"])}
        key_times = [round(float(f.pts * f.time_base), 3) for f in frames if f.key_frame]
        assert key_times == [0.0, 4.0, 8.0], f"{v['id']}: keyframes at {key_times}"
        # every segment on its own (after the init segment) starts with a keyframe
        for seg in segs:
            first = _decode([d / "init.mp4", seg])[0]
            assert first.key_frame
        durations = [s["duration"] / v["timescale"] for s in v["segments"]]
        assert durations == pytest.approx([4.0, 4.0, 2.52])  # 263 frames
        # the codecs string names what the decoder finds in the stream
        joined = d / ".check.mp4"
        joined.write_bytes((d / "init.mp4").read_bytes() + segs[0].read_bytes())
        try:
            with av.open(str(joined)) as c:
                next(c.decode(video=0))
                ctx = c.streams.video[0].codec_context
                assert ctx.name == "h264"
                profile = {66: "Baseline", 77: "Main", 100: "High"}[int(v["codecs"][5:7], 16)]
                assert profile in (ctx.profile or ""), (v["codecs"], ctx.profile)
                assert int(v["codecs"][9:11], 16) == ctx.level
        finally:
            joined.unlink()


def test_bitrates_are_near_the_targets(encoded: EncodedTitle) -> None:
    for v in encoded.description["video"]:
        target = TARGETS[v["id"]]
        # capped VBR on a short synthetic clip: within 35% of the target on average, peak under 2x the cap
        assert 0.65 * target <= v["average_bandwidth"] <= 1.35 * target, (v["id"], v["average_bandwidth"])
        assert v["bandwidth"] <= 2 * 1.07 * target
        assert v["average_bandwidth"] <= v["bandwidth"]


def test_audio_rendition(encoded: EncodedTitle) -> None:
    a = _rendition(encoded, "audio-und")
    assert a["codecs"] == "mp4a.40.2" and a["sample_rate"] == 48000 and a["channels"] == 2
    d = encoded.path / "audio-und"
    data = b"".join(p.read_bytes() for p in [d / "init.mp4", *sorted(d.glob("seg-*.m4s"))])
    tmp = d.parent / ".audio.mp4"
    tmp.write_bytes(data)
    try:
        with av.open(str(tmp)) as c:
            stream = c.streams.audio[0]
            assert stream.codec_context.name == "aac" and stream.rate == 48000
            samples = sum(f.samples for f in c.decode(audio=0))
    finally:
        tmp.unlink()
    assert samples / 48000 == pytest.approx(10.5, abs=0.1)
    assert 100_000 <= a["average_bandwidth"] <= 160_000


def test_manifests_from_the_description_name_real_files(encoded: EncodedTitle) -> None:
    pres = Presentation.from_json((encoded.path / "media.json").read_text())
    master = m3u8.loads(pres.hls_multivariant())
    assert len(master.playlists) == 2
    for variant in master.playlists:
        rid = variant.uri.split("/")[0]
        media = m3u8.loads(pres.hls_media(rid))
        assert (encoded.path / rid / media.segment_map[0].uri).exists()
        for seg in media.segments:
            assert (encoded.path / rid / seg.uri).exists()
        assert variant.stream_info.codecs.startswith(_rendition(encoded, rid)["codecs"])


def test_ladder_selection() -> None:
    assert [p.rung.name for p in select_ladder(3840, 2160)] == ["2160p", "1080p", "720p", "480p", "360p"]
    assert [(p.width, p.height) for p in select_ladder(1920, 800)][:2] == [(1728, 720), (1152, 480)]
    tiny = select_ladder(320, 240)
    assert [(p.rung.name, p.width, p.height) for p in tiny] == [("240p", 320, 240)]
    custom = (Rung("main", 400, 700_000),)
    assert [p.rung.name for p in select_ladder(1280, 720, custom)] == ["main"]


@pytest.mark.parametrize("kind", ["random", "truncated", "text", "audio-only", "missing"])
def test_bad_sources_fail_cleanly(kind: str, source_480p: Path, tmp_path: Path) -> None:
    bad = tmp_path / f"bad-{kind}.mp4"
    if kind == "random":
        bad.write_bytes(os.urandom(200_000))
    elif kind == "truncated":
        data = source_480p.read_bytes()
        bad.write_bytes(data[: len(data) // 3])
    elif kind == "text":
        bad.write_text("this is not a video\n" * 100)
    elif kind == "audio-only":
        make_audio_only(bad)
    origin = tmp_path / "origin"
    origin.mkdir()
    with pytest.raises(SourceError) as err:
        encode_title(bad, "broken", origin, preset="ultrafast")
    assert str(err.value)
    assert list(origin.iterdir()) == []  # no title, no staging leftovers


def test_cancellation_leaves_nothing(source_480p: Path, tmp_path: Path) -> None:
    calls = 0

    def cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 100

    with pytest.raises(EncodeCancelled):
        encode_title(source_480p, "cancelled", tmp_path, preset="ultrafast", should_cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_rerun_replaces_the_title(tmp_path: Path) -> None:
    first = make_source(tmp_path / "a.mp4", width=640, height=360, seconds=5, audio=False)
    second = make_source(tmp_path / "b.mp4", width=640, height=360, seconds=9, audio=False)
    origin = tmp_path / "origin"
    progress: list[float] = []
    encode_title(first, "t", origin, preset="ultrafast")
    done = encode_title(second, "t", origin, preset="ultrafast", on_progress=lambda p: progress.append(p.percent))
    assert sorted(p.name for p in origin.iterdir()) == ["t"]
    assert len(done.description["video"][0]["segments"]) == 3
    assert done.description["audio"] == []
    assert not (origin / "t" / "360p" / "seg-4.m4s").exists()
    assert progress[-1] == 100.0 and progress == sorted(progress)


def test_real_clip_big_buck_bunny(tmp_path: Path) -> None:
    clip = sample_clip("bigbuckbunny.mp4")
    done = encode_title(clip, "bbb", tmp_path, preset="ultrafast")
    assert [v["id"] for v in done.description["video"]] == ["720p", "480p", "360p"]
    assert done.description["audio"][0]["codecs"] == "mp4a.40.2"
    assert done.description["duration"] == pytest.approx(5.3, abs=0.1)
