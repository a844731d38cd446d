"""Protected packaging: encode_title with a Protection publishes only encrypted media (PyAV cannot decode it), which
the independent reference decryption (tests/protect/reference.py, the `cryptography` package) with the title's
keys turns back into exactly what the clear encode of the same source decodes to, as its HLS AES-128 variant does
with RFC 8216's whole-segment decryption; and EncodingService with
``protection = "cenc"`` encrypts every title it packages with the keys it stored wrapped."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import av
import av.error
import grpc
import m3u8
import pytest
from pydantic import SecretStr

from marquee.native import Presentation
from marquee.v1 import encoding_pb2, encoding_pb2_grpc
from services.common.config import ConfigError, ContentKeysConfig, ServerConfig
from services.common.store.sqlite import SqliteStore
from services.encoder.config import EncoderConfig
from services.encoder.keys import ContentKeys, MasterKeys
from services.encoder.media.ladder import Rung
from services.encoder.media.pipeline import STAGING, EncodedTitle, encode_title
from services.encoder.media.protect import Protection
from services.encoder.server import create_server
from tests.encoder.conftest import make_source
from tests.encoder.test_service import Harness
from tests.protect import reference
from tests.protect.titles import TEST_KEYS, protect_title

LADDER = (Rung("360p", 360, 600_000),)
MASTER = ContentKeysConfig(keys={"m1": SecretStr("encoder-master-key-0123456789abcdef012345")}, wrapping_kid="m1")


def frames(data: bytes, kind: str) -> list[str] | None:
    """A digest of every decoded frame, or None when FFmpeg refuses the stream."""
    try:
        with av.open(io.BytesIO(data), "r") as container:
            stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
            out = []
            for frame in container.decode(stream):
                assert isinstance(frame, av.VideoFrame | av.AudioFrame)
                out.append(hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest())
            return out
    except av.error.FFmpegError:
        return None


def files(title: Path, rendition: dict[str, Any]) -> tuple[bytes, list[bytes]]:
    folder = title / rendition["id"]
    segments = [(folder / f"seg-{n}.m4s").read_bytes() for n in range(1, len(rendition["segments"]) + 1)]
    return (folder / "init.mp4").read_bytes(), segments


def by_kind(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"video": doc["video"][0], "audio": doc["audio"][0]}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "master.mp4", width=640, height=360, seconds=6)


@pytest.fixture(scope="module")
def clear(source: Path, tmp_path_factory: pytest.TempPathFactory) -> EncodedTitle:
    origin = tmp_path_factory.mktemp("clear-origin")
    return encode_title(source, "film", origin, ladder=LADDER, preset="ultrafast", threads=1)


@pytest.fixture(scope="module", params=["cenc", "cbcs"])
def protected(request: pytest.FixtureRequest, source: Path, tmp_path_factory: pytest.TempPathFactory) -> EncodedTitle:
    origin = tmp_path_factory.mktemp("protected-origin")
    protection = Protection(request.param, TEST_KEYS)
    return encode_title(source, "film", origin, ladder=LADDER, preset="ultrafast", threads=1, protection=protection)


def test_media_json_describes_the_protection_and_the_encrypted_files(protected: EncodedTitle) -> None:
    doc = json.loads((protected.path / "media.json").read_text())
    assert doc == protected.description
    scheme = doc["protection"]["scheme"]
    assert scheme in ("cenc", "cbcs")
    assert doc["protection"]["key_ids"] == {k: str(uuid.UUID(bytes=kid)) for k, (kid, _) in TEST_KEYS.items()}
    for kind, rendition in by_kind(doc).items():
        init, segments = files(protected.path, rendition)
        parsed = reference.parse_init(init)
        assert [t.tenc.key_id for t in parsed.tracks.values()] == [TEST_KEYS[kind][0]]
        assert {t.tenc.scheme for t in parsed.tracks.values()} == {scheme}
        assert base64.b64decode(doc["protection"]["pssh"][kind]) in init  # the common pssh, as in the init
        assert [len(s) for s in segments] == [e["size"] for e in rendition["segments"]]
    Presentation.from_json(json.dumps(doc))  # the manifest renderer takes it
    # no clear file anywhere: the title holds only the encrypted renditions, staging is gone
    assert sorted(p.name for p in protected.path.iterdir() if p.is_dir()) == ["360p", "audio-und", "trickplay"]
    assert not (protected.path.parent / STAGING).exists()
    for _, key in TEST_KEYS.values():
        for path in protected.path.rglob("*"):
            assert not path.is_file() or key not in path.read_bytes()


def test_encrypted_media_does_not_decode_without_the_key_and_does_with_it(
    clear: EncodedTitle, protected: EncodedTitle
) -> None:
    for kind in ("video", "audio"):
        clear_init, clear_segments = files(clear.path, by_kind(clear.description)[kind])
        expected = frames(clear_init + b"".join(clear_segments), kind)
        assert expected, f"the clear {kind} does not decode"
        init, segments = files(protected.path, by_kind(protected.description)[kind])
        assert init != clear_init and all(a != b for a, b in zip(segments, clear_segments, strict=True))
        undecrypted = frames(init + b"".join(segments), kind)
        if undecrypted is not None:  # whatever FFmpeg makes of it, hardly a frame is the real one
            assert sum(a == b for a, b in zip(undecrypted, expected, strict=False)) <= len(expected) // 10
        parsed = reference.parse_init(init)
        keys = dict(TEST_KEYS.values())
        decrypted = [reference.decrypt_segment(s, parsed, keys) for s in segments]
        assert decrypted == clear_segments  # byte for byte the clear packaging
        assert frames(reference.clear_init(init) + b"".join(decrypted), kind) == expected


def test_the_hls_aes128_variant_decrypts_to_the_clear_packaging(
    clear: EncodedTitle, protected: EncodedTitle, tmp_path: Path
) -> None:
    """Each rendition's AES-128 variant (aes128/): the clear init segment, and every media segment whole-encrypted
    with the track type's key, its IV the segment number (the media sequence number its playlist gives it), never
    longer than the Common Encryption segment (so the announced bandwidths bound it)."""
    doc = protected.description
    assert doc["protection"]["hls_aes128"] is True
    pres = Presentation.from_json(json.dumps(doc))
    assert pres.hls_aes128
    for kind, rendition in by_kind(doc).items():
        clear_init, clear_segments = files(clear.path, by_kind(clear.description)[kind])
        variant = protected.path / rendition["id"] / "aes128"
        assert (variant / "init.mp4").read_bytes() == clear_init
        kid, key = TEST_KEYS[kind]
        encrypted = [(variant / f"seg-{n}.m4s").read_bytes() for n in range(1, len(clear_segments) + 1)]
        for n, (data, plain, entry) in enumerate(zip(encrypted, clear_segments, rendition["segments"], strict=True), 1):
            assert len(plain) < len(data) <= len(plain) + 16 and len(data) <= entry["size"]
            assert reference.hls_aes128_decrypt(data, key, n.to_bytes(16, "big")) == plain
        assert frames(clear_init + b"".join(encrypted), kind) != frames(clear_init + b"".join(clear_segments), kind)
        # its playlist (as the edge renders it) names the raw key of the track type and the segments in the variant
        playlist = m3u8.loads(
            pres.hls_media(rendition["id"], token="abc", key_uri="https://k.example/keys", aes128=True)
        )
        (ext_key,) = playlist.keys
        assert ext_key is not None and ext_key.method == "AES-128" and ext_key.iv is None
        assert ext_key.uri == f"https://k.example/keys/{kid.hex()}"
        assert playlist.media_sequence == 1 and playlist.segment_map[0].uri == "init.mp4?token=abc"
        assert [s.uri for s in playlist.segments] == [f"seg-{n}.m4s?token=abc" for n in range(1, len(encrypted) + 1)]
    # packaged without the variant (hls_aes128 off), a title has none and its manifests offer none
    off = protect_title(clear.path, tmp_path / "film", "cenc")
    assert not list(off.path.rglob("aes128"))
    with pytest.raises(ValueError, match="no HLS AES-128 variant"):
        Presentation.from_json(json.dumps(clear.description)).hls_multivariant(aes128=True)


def test_protection_never_shows_its_keys() -> None:
    text = repr(Protection("cenc", TEST_KEYS))
    assert all(key.hex() not in text for _, key in TEST_KEYS.values())
    with pytest.raises(ValueError, match="not one of"):
        Protection("cens", TEST_KEYS)


async def test_encoding_service_protects_with_its_stored_keys(tmp_path: Path, source: Path) -> None:
    harness = Harness(tmp_path, SqliteStore(tmp_path / "enc.db"))
    deps = harness.deps()
    deps.content_keys = MASTER
    config = EncoderConfig(server=ServerConfig(port=0, drain_delay=0, grace_period=1), preset="ultrafast")
    config = config.model_copy(update={"protection": "cenc"})
    harness.service = await create_server(config, deps)
    await harness.service.start()
    harness.channel = grpc.aio.insecure_channel(f"127.0.0.1:{harness.service.grpc_port}")
    harness.stub = encoding_pb2_grpc.EncodingServiceStub(harness.channel)
    try:
        job = await harness.submit(source, "film")
        final = await harness.wait(job.name, timeout=240)
        assert final.state == encoding_pb2.ENCODING_JOB_STATE_SUCCEEDED, final.error
        stored = await ContentKeys(harness.store, MasterKeys(MASTER)).get("film")
        doc = json.loads((harness.origin / "film" / "media.json").read_text())
        assert doc["protection"]["scheme"] == "cenc"
        assert doc["protection"]["key_ids"] == {k: str(uuid.UUID(bytes=v.kid)) for k, v in stored.items()}
        keys = {k.kid: k.key for k in stored.values()}
        for kind, rendition in by_kind(doc).items():
            init, segments = files(harness.origin / "film", rendition)
            parsed = reference.parse_init(init)
            clear = reference.clear_init(init) + b"".join(reference.decrypt_segment(s, parsed, keys) for s in segments)
            assert frames(clear, kind), f"the decrypted {kind} does not decode"
            for key in keys.values():
                assert key not in init and all(key not in s for s in segments)
    finally:
        await harness.stop()
        await harness.bus.close()
        await harness.store.close()


async def test_protection_without_a_master_key_is_a_config_error(tmp_path: Path) -> None:
    harness = Harness(tmp_path, SqliteStore(tmp_path / "enc.db"))
    config = EncoderConfig.model_validate({"protection": "cbcs", "server": {"port": 0}})
    with pytest.raises(ConfigError, match="needs a master key"):
        await create_server(config, harness.deps())
    await harness.store.close()
    assert EncoderConfig().protection == "none"  # off by default


def test_manifests_announce_the_protection_only_for_protected_titles(
    clear: EncodedTitle, protected: EncodedTitle
) -> None:
    doc = protected.description
    scheme = doc["protection"]["scheme"]
    pres = Presentation.from_json(json.dumps(doc))
    assert pres.protection_scheme == scheme
    license_url = "https://play.example/license?token=abc"
    mpd = ElementTree.fromstring(pres.dash_mpd(token="abc", license_url=license_url))
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011", "cenc": "urn:mpeg:cenc:2013", "dashif": "https://dashif.org/CPS"}
    for kind, adaptation in zip(("video", "audio"), mpd.iterfind("d:Period/d:AdaptationSet", ns), strict=True):
        assert adaptation.get("contentType") == kind
        mp4, clearkey = adaptation.findall("d:ContentProtection", ns)
        assert mp4.get("schemeIdUri") == "urn:mpeg:dash:mp4protection:2011" and mp4.get("value") == scheme
        kid = TEST_KEYS[kind][0]
        assert mp4.get(f"{{{ns['cenc']}}}default_KID") == str(uuid.UUID(bytes=kid))
        assert clearkey.get("schemeIdUri") == "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
        assert clearkey.findtext("dashif:Laurl", namespaces=ns) == license_url
        pssh = base64.b64decode(clearkey.findtext("cenc:pssh", namespaces=ns) or "")
        init, _ = files(protected.path, by_kind(doc)[kind])
        assert pssh in init  # the init segment's own common pssh box
        (listed,) = reference.parse_init(init).pssh
        assert listed.key_ids == (kid,)
        # HLS: the media playlist's EXT-X-KEY names the same KID and pssh
        media = m3u8.loads(pres.hls_media(by_kind(doc)[kind]["id"], token="abc"))
        (key,) = [k for k in media.keys if k is not None]
        assert key.method == ("SAMPLE-AES" if scheme == "cbcs" else "SAMPLE-AES-CTR")
        assert key.keyformat == "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
        assert key.uri == "data:text/plain;base64," + doc["protection"]["pssh"][kind]
        assert key.iv is None and f"KEYID=0x{kid.hex()}" in pres.hls_media(by_kind(doc)[kind]["id"])
    plain = Presentation.from_json(json.dumps(clear.description))
    assert plain.protection_scheme is None
    assert "ContentProtection" not in plain.dash_mpd(license_url=license_url)
    assert "EXT-X-KEY" not in plain.hls_media(by_kind(clear.description)["video"]["id"])
