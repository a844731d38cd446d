"""HLS METHOD=AES-128 (RFC 8216): whole segments in AES-128-CBC with PKCS#7 padding, decrypted by `cryptography`."""

from __future__ import annotations

import pytest

from marquee.native import InvalidArgumentError, hls_aes128_encrypt, hls_sequence_iv
from tests.protect import reference
from tests.protect.conftest import Rendition

KEY = bytes(range(16))


def test_segments_decrypt_with_the_media_sequence_iv(clip: dict[str, Rendition]) -> None:
    segments = clip["video"].segments
    for n, segment in enumerate(segments, start=1):
        out = hls_aes128_encrypt(segment, KEY, media_sequence=n)
        assert len(out) == (len(segment) // 16 + 1) * 16
        assert reference.hls_aes128_decrypt(out, KEY, n.to_bytes(16, "big")) == segment
    # the init section too (EXT-X-MAP under an EXT-X-KEY is encrypted; its IV must be given explicitly)
    iv = bytes(16)
    assert (
        reference.hls_aes128_decrypt(hls_aes128_encrypt(clip["video"].init, KEY, iv=iv), KEY, iv) == clip["video"].init
    )


def test_an_explicit_iv_wins_over_the_sequence() -> None:
    iv = b"\x01" * 16
    assert hls_aes128_encrypt(b"abc", KEY, media_sequence=3, iv=iv) == hls_aes128_encrypt(b"abc", KEY, iv=iv)
    assert hls_aes128_encrypt(b"abc", KEY, media_sequence=3) == hls_aes128_encrypt(b"abc", KEY, iv=hls_sequence_iv(3))


def test_sequence_iv_is_128_bit_big_endian() -> None:
    assert hls_sequence_iv(0) == bytes(16)
    assert hls_sequence_iv(258) == bytes(14) + b"\x01\x02"
    assert hls_sequence_iv(2**64 - 1) == bytes(8) + b"\xff" * 8
    with pytest.raises(OverflowError):
        hls_sequence_iv(-1)


@pytest.mark.parametrize(
    ("key", "kwargs"),
    [
        (KEY, {}),
        (KEY[:8], {"media_sequence": 1}),
        (KEY, {"iv": b"\x00" * 8}),
    ],
)
def test_bad_arguments(key: bytes, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        hls_aes128_encrypt(b"segment", key, **kwargs)  # type: ignore[arg-type]
