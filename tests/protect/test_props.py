"""Property tests over the packager's box reader and writer: random, truncated and corrupted MP4 input is either
encrypted or refused with a typed error (never a panic or another exception), and what it writes reads back."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marquee.native import COMMON_SYSTEM_ID, CencEncryptor, InvalidArgumentError, hls_aes128_encrypt, pssh_box
from services.encoder.media.cmaf import boxes
from tests.protect import reference
from tests.protect.conftest import FIXTURES
from tests.protect.titles import TEST_KEYS


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


MUXED_INIT = fixture("muxed.init.mp4")
MUXED_SEG = fixture("muxed.seg.m4s")
STRESS_INIT = fixture("stress.init.mp4")
STRESS_SEG = fixture("stress.seg.m4s")
SCHEMES = st.sampled_from(["cenc", "cbcs"])


def encryptor(init: bytes, scheme: str) -> CencEncryptor:
    keys = dict(TEST_KEYS) if init == MUXED_INIT else {"video": TEST_KEYS["video"]}
    return CencEncryptor(init, scheme, keys)


def decrypt(enc: CencEncryptor, segment: bytes) -> bytes:
    init = reference.parse_init(enc.init_segment)
    return reference.decrypt_segment(segment, init, dict(TEST_KEYS.values()))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), SCHEMES)
def test_random_bytes_are_refused_cleanly(data: bytes, scheme: str) -> None:
    with contextlib.suppress(InvalidArgumentError):
        encryptor(data, scheme)
    with contextlib.suppress(InvalidArgumentError):
        encryptor(MUXED_INIT, scheme).encrypt(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(MUXED_INIT)), st.integers(0, len(MUXED_SEG)), SCHEMES)
def test_truncations_are_refused_cleanly(init_cut: int, seg_cut: int, scheme: str) -> None:
    with contextlib.suppress(InvalidArgumentError):
        encryptor(MUXED_INIT[:init_cut], scheme)
    enc = encryptor(MUXED_INIT, scheme)
    try:
        out = enc.encrypt(MUXED_SEG[:seg_cut])
    except InvalidArgumentError:
        return
    # what is accepted is whole boxes: what the writer produced reads back to the truncated input's samples
    assert decrypt(enc, out) == MUXED_SEG[:seg_cut]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1500), st.integers(0, 255), SCHEMES)
def test_corrupted_headers_and_slices_are_refused_or_round_trip(at: int, value: int, scheme: str) -> None:
    """A byte changed in the moof or the first samples' NAL lengths and slice headers."""
    data = bytearray(STRESS_SEG)
    data[at] = value
    enc = encryptor(STRESS_INIT, scheme)
    try:
        out = enc.encrypt(bytes(data))
    except InvalidArgumentError:
        return
    assert decrypt(enc, out) == bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(MUXED_INIT) - 1), st.integers(0, 255))
def test_corrupted_init_segments_are_refused_or_written_whole(at: int, value: int) -> None:
    data = bytearray(MUXED_INIT)
    data[at] = value
    try:
        enc = encryptor(bytes(data), "cenc")
    except InvalidArgumentError:
        return
    written = list(boxes(enc.init_segment))
    assert written[-1].end == len(enc.init_segment)


@given(st.binary(min_size=16, max_size=16), st.lists(st.binary(min_size=16, max_size=16), max_size=4), st.binary())
def test_pssh_boxes_read_back(system_id: bytes, key_ids: list[bytes], data: bytes) -> None:
    box = pssh_box(system_id, data, key_ids)
    (b,) = boxes(box)
    assert b.type == b"pssh" and b.end == len(box)
    assert reference.parse_pssh(box, b) == reference.Pssh(system_id, tuple(key_ids), data)


def test_common_pssh_lists_both_keys() -> None:
    enc = encryptor(MUXED_INIT, "cenc")
    (common,) = reference.parse_init(enc.init_segment).pssh
    assert common.system_id == COMMON_SYSTEM_ID
    assert set(common.key_ids) == {kid for kid, _ in TEST_KEYS.values()}


@given(st.binary(max_size=300), st.binary(min_size=16, max_size=16), st.integers(0, 2**64 - 1))
def test_hls_aes128_against_cryptography(data: bytes, key: bytes, sequence: int) -> None:
    out = hls_aes128_encrypt(data, key, media_sequence=sequence)
    assert len(out) % 16 == 0 and len(out) > len(data)
    assert reference.hls_aes128_decrypt(out, key, sequence.to_bytes(16, "big")) == data
