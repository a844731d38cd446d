"""Manifests from the Rust renderer, read back by the m3u8 and mpegdash libraries."""

from __future__ import annotations

import json
import math

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from marquee.native import InvalidArgumentError, Presentation
from tests.native.manifest_samples import description, description_json

TOKEN = "v1.k1.4000000000.L3YvZmVhdHVyZS8q..c2ln"
PATHWAYS = [("edge-a", "http://127.0.0.1:8081/v/feature/"), ("edge-b", "http://127.0.0.1:8082/v/feature/")]
STEERING = ("http://127.0.0.1:8090/steering/hls?session=s1", "edge-a")


@pytest.fixture(scope="module")
def desc() -> dict:  # type: ignore[type-arg]
    return description()


@pytest.fixture(scope="module")
def pres(desc: dict) -> Presentation:  # type: ignore[type-arg]
    return Presentation.from_json(json.dumps(desc))


def test_properties(pres: Presentation) -> None:
    assert pres.title_id == "feature"
    assert pres.video_ids == ["2160p", "1080p", "720p", "480p", "360p"]
    assert pres.audio_ids == ["audio-en"]
    assert pres.video_heights == [2160, 1080, 720, 480, 360]


def test_multivariant_parses_and_matches(pres: Presentation, desc: dict) -> None:  # type: ignore[type-arg]
    text = pres.hls_multivariant(token=TOKEN)
    pl = m3u8.loads(text)
    assert pl.is_variant
    assert len(pl.playlists) == 5
    audio_peak = desc["audio"][0]["bandwidth"]
    for variant, rung in zip(pl.playlists, desc["video"], strict=True):
        info = variant.stream_info
        assert info.bandwidth == rung["bandwidth"] + audio_peak
        assert info.average_bandwidth == rung["average_bandwidth"] + desc["audio"][0]["average_bandwidth"]
        assert info.codecs == f"{rung['codecs']},mp4a.40.2"
        assert info.resolution == (rung["width"], rung["height"])
        assert info.frame_rate == 25.0
        assert variant.uri == f"{rung['id']}/index.m3u8?token={TOKEN}"
    assert [m.uri for m in pl.media] == [f"audio-en/index.m3u8?token={TOKEN}"]
    assert pl.media[0].language == "en" and pl.media[0].default == "YES"
    assert len(pl.iframe_playlists) == 5
    for iframe in pl.iframe_playlists:
        assert iframe.uri.endswith(f"/iframes.m3u8?token={TOKEN}")


def test_media_playlists(pres: Presentation, desc: dict) -> None:  # type: ignore[type-arg]
    for rendition in desc["video"] + desc["audio"]:
        pl = m3u8.loads(pres.hls_media(rendition["id"], token=TOKEN))
        ts = rendition["timescale"]
        assert pl.playlist_type == "vod" and pl.is_endlist
        assert pl.segment_map[0].uri == f"init.mp4?token={TOKEN}"
        assert len(pl.segments) == len(rendition["segments"]) == 1800
        expected = [s["duration"] / ts for s in rendition["segments"]]
        assert [seg.duration for seg in pl.segments] == pytest.approx(expected, abs=1e-6)
        assert sum(seg.duration for seg in pl.segments) == pytest.approx(desc["duration"], abs=1e-3)
        assert pl.target_duration == 4
        assert all(seg.uri == f"seg-{i + 1}.m4s?token={TOKEN}" for i, seg in enumerate(pl.segments))
        assert pl.segments[-1].duration < 4


def test_iframe_playlist(pres: Presentation, desc: dict) -> None:  # type: ignore[type-arg]
    pl = m3u8.loads(pres.hls_iframes("720p"))
    assert pl.is_i_frames_only
    kf = desc["video"][2]["segments"][0]["keyframe"]
    assert pl.segments[0].byterange == f"{kf[1]}@{kf[0]}"
    with pytest.raises(InvalidArgumentError):
        pres.hls_iframes("audio-en")


def test_steering_pathways(pres: Presentation) -> None:
    pl = m3u8.loads(pres.hls_multivariant(token=TOKEN, pathways=PATHWAYS, steering=STEERING))
    assert len(pl.playlists) == 10
    for pathway_id, base in PATHWAYS:
        uris = [p.uri for p in pl.playlists if p.stream_info.pathway_id == pathway_id]
        assert len(uris) == 5
        assert all(u.startswith(base) and u.endswith(f"?token={TOKEN}") for u in uris)
    assert pl.content_steering is not None
    assert pl.content_steering.uri == STEERING[0]
    assert pl.content_steering.pathway_id == "edge-a"


def test_resolution_cap(pres: Presentation) -> None:
    pl = m3u8.loads(pres.hls_multivariant(max_height=1080))
    assert [p.stream_info.resolution[1] for p in pl.playlists] == [1080, 720, 480, 360]
    mpd = MPEGDASHParser.parse(pres.dash_mpd(max_height=720))
    assert [r.height for r in mpd.periods[0].adaptation_sets[0].representations] == [720, 480, 360]


def test_dash_mpd(pres: Presentation, desc: dict) -> None:  # type: ignore[type-arg]
    mpd = MPEGDASHParser.parse(pres.dash_mpd(token=TOKEN, pathways=PATHWAYS, steering=STEERING))
    assert mpd.type == "static"
    assert [b.base_url_value for b in mpd.base_urls] == [b for _, b in PATHWAYS]
    video, audio = mpd.periods[0].adaptation_sets
    assert [r.id for r in video.representations] == [r["id"] for r in desc["video"]]
    for rep, rung in zip(video.representations, desc["video"], strict=True):
        assert (rep.codecs, rep.bandwidth, rep.width, rep.height) == (
            rung["codecs"],
            rung["bandwidth"],
            rung["width"],
            rung["height"],
        )
        tmpl = rep.segment_templates[0]
        assert tmpl.media == f"{rung['id']}/seg-$Number$.m4s?token={TOKEN}"
        assert tmpl.initialization == f"{rung['id']}/init.mp4?token={TOKEN}"
        timeline = tmpl.segment_timelines[0].Ss
        count = sum((s.r or 0) + 1 for s in timeline)
        total = sum(s.d * ((s.r or 0) + 1) for s in timeline)
        assert count == len(rung["segments"])
        assert total == sum(s["duration"] for s in rung["segments"])
    assert audio.lang == "en"
    assert audio.representations[0].audio_sampling_rate == "48000"
    text = pres.dash_mpd(steering=STEERING, pathways=PATHWAYS)
    assert '<ContentSteering defaultServiceLocation="edge-a" queryBeforeStart="true">' in text


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(version=3), "version"),
        (lambda d: d["video"][1].update(id="2160p"), "used twice"),
        (lambda d: d["video"][0].update(timescale=0), "video[0].timescale"),
        (lambda d: d["video"][0].update(segments=[]), "video[0].segments"),
        (lambda d: d["audio"][0].update(init="/etc/passwd"), "audio[0].init"),
        (lambda d: d.update(video=[]), "at least one rendition"),
        (lambda d: d.update(duration=-1), "duration"),
        (lambda d: d["video"][2].pop("width"), "width and height"),
    ],
)
def test_bad_descriptions(change: object, words: str) -> None:
    d = description(seconds=20.0)
    change(d)  # type: ignore[operator]
    with pytest.raises(InvalidArgumentError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Presentation.from_json(json.dumps(d))


def test_bad_render_options(pres: Presentation) -> None:
    with pytest.raises(InvalidArgumentError, match="token"):
        pres.hls_media("720p", token='a"b')
    with pytest.raises(InvalidArgumentError, match="no rendition"):
        pres.hls_media("4320p")
    with pytest.raises(InvalidArgumentError, match="default pathway"):
        pres.dash_mpd(pathways=PATHWAYS, steering=("http://s/", "edge-z"))
    with pytest.raises(InvalidArgumentError):
        Presentation.from_json("not json")
    assert math.isclose(Presentation.from_json(description_json(seconds=8.0)).duration, 8.0)
