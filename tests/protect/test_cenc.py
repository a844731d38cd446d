"""Common Encryption of a real encoded title through the Python API, checked by the independent reference
decryptor (tests/protect/reference.py, `cryptography`): every byte of the clear init and media segments comes
back, the boxes say what the spec asks, and bad input is a typed exception."""

from __future__ import annotations

import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from marquee.native import (
    COMMON_SYSTEM_ID,
    CencEncryptor,
    InvalidArgumentError,
    MalformedMediaError,
    UnsupportedMediaError,
    pssh_box,
)
from services.encoder.media import cmaf
from services.encoder.media.pipeline import EncodedTitle
from tests.protect import reference
from tests.protect.conftest import Rendition
from tests.protect.titles import TEST_KEYS, protect_title

SCHEMES = [("cenc", 8), ("cenc", 16), ("cbcs", 8)]
WIDEVINE_SYSTEM_ID = bytes.fromhex("edef8ba979d64acea3c827dcd51d21ed")


def mdat_payloads(segment: bytes) -> bytes:
    return b"".join(segment[b.body : b.end] for b in cmaf.boxes(segment) if b.type == b"mdat")


@pytest.mark.parametrize(("scheme", "iv_size"), SCHEMES)
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_reference_decryption_restores_every_byte(
    clip: dict[str, Rendition], kind: str, scheme: str, iv_size: int
) -> None:
    r = clip[kind]
    kid, key = TEST_KEYS[kind]
    enc = CencEncryptor(r.init, scheme, {kind: (kid, key)}, iv_size=iv_size)
    init = reference.parse_init(enc.init_segment)
    (track,) = init.tracks.values()
    assert track.entry == (b"encv" if kind == "video" else b"enca")
    assert track.original_format == (b"avc1" if kind == "video" else b"mp4a")
    assert track.tenc.scheme == scheme and track.tenc.key_id == kid
    if scheme == "cenc":
        assert (track.tenc.iv_size, track.tenc.constant_iv) == (iv_size, None)
    else:
        assert track.tenc.iv_size == 0 and track.tenc.constant_iv is not None and len(track.tenc.constant_iv) == 16
        assert (track.tenc.crypt, track.tenc.skip) == ((1, 9) if kind == "video" else (0, 0))
    assert init.pssh == [reference.Pssh(COMMON_SYSTEM_ID, (kid,), b"")]
    assert reference.clear_init(enc.init_segment) == r.init
    for clear in r.segments:
        protected = enc.encrypt(clear)
        assert mdat_payloads(protected) != mdat_payloads(clear)
        assert reference.decrypt_segment(protected, init, {kid: key}) == clear


def changed_fraction(a: bytes, b: bytes) -> float:
    return sum(x != y for x, y in zip(a, b, strict=True)) / len(a)


def test_what_each_scheme_leaves_clear(clip: dict[str, Rendition]) -> None:
    """cenc protects nearly all of the video slice data and all of the audio; cbcs one block in ten of the video."""
    video, audio = clip["video"], clip["audio"]
    changed = {}
    for scheme in ("cenc", "cbcs"):
        for kind, r in (("video", video), ("audio", audio)):
            enc = CencEncryptor(r.init, scheme, {kind: TEST_KEYS[kind]})
            clear = r.segments[0]
            changed[scheme, kind] = changed_fraction(mdat_payloads(clear), mdat_payloads(enc.encrypt(clear)))
    assert changed["cenc", "video"] > 0.9
    assert changed["cenc", "audio"] > 0.95
    assert 0.07 < changed["cbcs", "video"] < 0.11
    assert changed["cbcs", "audio"] > 0.9


def test_first_sample_keeps_its_clear_prefix(clip: dict[str, Rendition]) -> None:
    """The first video sample's NAL length prefixes, NAL headers and slice headers are unchanged; its subsample map
    starts with a clear run and cenc's protected runs are whole blocks."""
    r = clip["video"]
    kid, key = TEST_KEYS["video"]
    for scheme in ("cenc", "cbcs"):
        enc = CencEncryptor(r.init, scheme, {"video": (kid, key)})
        protected = enc.encrypt(r.segments[0])
        moof = next(b for b in cmaf.boxes(protected) if b.type == b"moof")
        traf = cmaf.find(protected, [b"traf"], moof.body, moof.end)
        assert traf is not None
        senc = cmaf.find(protected, [b"senc"], traf.body, traf.end)
        assert senc is not None
        flags = int.from_bytes(protected[senc.body + 1 : senc.body + 4], "big")
        assert flags == 2
        iv_size = 8 if scheme == "cenc" else 0
        pos = senc.body + 8 + iv_size
        (count,) = struct.unpack_from(">H", protected, pos)
        pairs = [struct.unpack_from(">HI", protected, pos + 2 + 6 * i) for i in range(count)]
        assert pairs[0][0] > 5  # length prefix + NAL header + slice header at least
        if scheme == "cenc":
            assert all(p % 16 == 0 for _, p in pairs)
        mdat = next(b for b in cmaf.boxes(protected) if b.type == b"mdat")
        clear_mdat = next(b for b in cmaf.boxes(r.segments[0]) if b.type == b"mdat")
        head = pairs[0][0]
        assert protected[mdat.body : mdat.body + head] == r.segments[0][clear_mdat.body : clear_mdat.body + head]


def test_extra_pssh_boxes_and_their_order(clip: dict[str, Rendition]) -> None:
    r = clip["video"]
    widevine = pssh_box(WIDEVINE_SYSTEM_ID, b"\x12\x10" + TEST_KEYS["video"][0])
    enc = CencEncryptor(r.init, "cenc", {"video": TEST_KEYS["video"]}, pssh=[widevine])
    assert enc.pssh[1] == widevine
    parsed = reference.parse_init(enc.init_segment).pssh
    assert [p.system_id for p in parsed] == [COMMON_SYSTEM_ID, WIDEVINE_SYSTEM_ID]
    assert parsed[1] == reference.Pssh(WIDEVINE_SYSTEM_ID, (), b"\x12\x10" + TEST_KEYS["video"][0])
    with_kids = pssh_box(WIDEVINE_SYSTEM_ID, b"", [b"k" * 16, b"j" * 16])
    assert with_kids[8] == 1  # version 1 when key ids are listed


def test_tracks_describe_the_protection(clip: dict[str, Rendition]) -> None:
    r = clip["video"]
    iv = bytes(range(16))
    enc = CencEncryptor(r.init, "cbcs", {"video": TEST_KEYS["video"]}, constant_ivs={"video": iv})
    (track,) = enc.tracks
    assert (track.kind, track.codec, track.key_id, track.iv_size) == ("video", "avc1", TEST_KEYS["video"][0], 0)
    assert (track.constant_iv, track.crypt_byte_block, track.skip_byte_block) == (iv, 1, 9)
    assert enc.scheme == "cbcs"
    assert "avc1" in repr(track)
    # same IV given, same output: the constant IV is what the init segment says
    again = CencEncryptor(r.init, "cbcs", {"video": TEST_KEYS["video"]}, constant_ivs={"video": iv})
    assert again.encrypt(r.segments[0]) == enc.encrypt(r.segments[0])


def test_cenc_ivs_are_fresh_per_segment_unless_given(clip: dict[str, Rendition]) -> None:
    r = clip["audio"]
    enc = CencEncryptor(r.init, "cenc", {"audio": TEST_KEYS["audio"]})
    seg = r.segments[0]
    assert enc.encrypt(seg) != enc.encrypt(seg)
    assert enc.encrypt(seg, iv=b"\x00" * 8) == enc.encrypt(seg, iv=b"\x00" * 8)


def test_segments_encrypt_in_parallel_threads(clip: dict[str, Rendition]) -> None:
    r = clip["video"]
    enc = CencEncryptor(r.init, "cenc", {"video": TEST_KEYS["video"]})
    ivs = [n.to_bytes(8, "big") for n in range(len(r.segments))]
    expected = [enc.encrypt(s, iv=iv) for s, iv in zip(r.segments, ivs, strict=True)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: enc.encrypt(p[0], iv=p[1]), zip(r.segments * 3, ivs * 3, strict=True)))
    assert got == expected * 3


def test_bad_arguments_are_typed_errors(clip: dict[str, Rendition]) -> None:
    v = clip["video"]
    kid, key = TEST_KEYS["video"]

    def make(init: bytes = v.init, scheme: str = "cenc", keys: object = None, **options: Any) -> None:
        CencEncryptor(init, scheme, {"video": (kid, key)} if keys is None else keys, **options)  # type: ignore[arg-type]

    cases: list[tuple[type[Exception], Callable[[], None]]] = [
        (InvalidArgumentError, lambda: make(keys={"video": (kid, key[:15])})),
        (InvalidArgumentError, lambda: make(keys={"video": (kid[:4], key)})),
        (InvalidArgumentError, lambda: make(keys={"subtitles": (kid, key)})),
        (InvalidArgumentError, lambda: make(keys={})),
        (InvalidArgumentError, lambda: make(keys={"video": (kid, key), "audio": (kid, key)})),
        (InvalidArgumentError, lambda: make(scheme="cbc1")),
        (InvalidArgumentError, lambda: make(iv_size=12)),
        (InvalidArgumentError, lambda: make(scheme="cbcs", constant_ivs={"video": b"short"})),
        (InvalidArgumentError, lambda: make(pssh=[b"\x00\x00\x00\x08free"])),
        (MalformedMediaError, lambda: make(init=v.init[:200])),
        (MalformedMediaError, lambda: make(init=b"")),
        (UnsupportedMediaError, lambda: make(init=v.segments[0])),
    ]
    for error, attempt in cases:
        with pytest.raises(error):
            attempt()
    enc = CencEncryptor(v.init, "cenc", {"video": (kid, key)})
    with pytest.raises(InvalidArgumentError, match="8 bytes"):
        enc.encrypt(v.segments[0], iv=b"\x00" * 16)
    with pytest.raises(MalformedMediaError):
        enc.encrypt(v.segments[0][:-100])
    with pytest.raises(UnsupportedMediaError, match="already"):
        enc.encrypt(enc.encrypt(v.segments[0]))
    with pytest.raises(UnsupportedMediaError, match="already"):
        CencEncryptor(enc.init_segment, "cenc", {"video": (kid, key)})
    # every media error is an InvalidArgumentError (so a ValueError) for the services mapping them
    assert issubclass(MalformedMediaError, InvalidArgumentError) and issubclass(UnsupportedMediaError, ValueError)


def test_protect_title_helper(title: EncodedTitle, tmp_path: Path) -> None:
    """The helper the integration tests start from: a whole title encrypted, its media description updated."""
    protected = protect_title(title.path, tmp_path / "bbb", "cbcs")
    doc = protected.description
    assert (tmp_path / "bbb" / "thumbnail.jpg").exists()
    for kind in ("video", "audio"):
        for rendition in doc[kind]:
            folder = protected.path / rendition["id"]
            init = reference.parse_init((folder / "init.mp4").read_bytes())
            kid, key = TEST_KEYS[kind]
            for n, entry in enumerate(rendition["segments"], start=1):
                data = (folder / f"seg-{n}.m4s").read_bytes()
                assert entry["size"] == len(data)
                clear = (title.path / rendition["id"] / f"seg-{n}.m4s").read_bytes()
                assert reference.decrypt_segment(data, init, {kid: key}) == clear
                if kind == "video":
                    # one moof per segment: the first sample ends later by exactly what the moof grew
                    clear_len = title.description["video"][0]["segments"][n - 1]["keyframe"][1]
                    assert entry["keyframe"] == [0, clear_len + len(data) - len(clear)]
            assert rendition["bandwidth"] >= rendition["average_bandwidth"] > 0
