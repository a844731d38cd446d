"""The gRPC-web wire format without sockets: frames and base64 under any chunking (property tests), timeouts,
status messages, content types, gzip limits and metadata filtering."""

from __future__ import annotations

import base64
import gzip
import itertools
import math

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from services.gateway.metadata import http_pairs, request_metadata
from services.gateway.protocol import (
    Base64Decoder,
    FrameReader,
    Mode,
    ProtocolError,
    UnsupportedMediaType,
    backend_timeout,
    decode_grpc_message,
    encode_grpc_message,
    frame,
    gunzip,
    parse_content_type,
    parse_timeout,
    parse_trailers_block,
    trailers_block,
)

messages = st.lists(st.binary(max_size=300), max_size=6)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(messages=messages, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_frames_survive_any_chunking(messages: list[bytes], cuts: list[int]) -> None:
    body = b"".join(frame(m) for m in messages)
    reader = FrameReader(max_message_bytes=1000)
    got = [f.payload for chunk in _split(body, cuts) for f in reader.feed(chunk)]
    reader.finish()
    assert got == messages


@given(messages=st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=4), cut=st.integers(min_value=1))
def test_a_truncated_body_is_an_error(messages: list[bytes], cut: int) -> None:
    body = b"".join(frame(m) for m in messages)
    truncated = body[: len(body) - 1 - cut % (len(body) - 1)] if len(body) > 1 else b""
    reader = FrameReader(max_message_bytes=1000)
    reader.feed(truncated)
    if truncated and len(truncated) not in _frame_ends(messages):
        with pytest.raises(ProtocolError) as err:
            reader.finish()
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def _frame_ends(messages: list[bytes]) -> set[int]:
    ends, total = set(), 0
    for m in messages:
        total += 5 + len(m)
        ends.add(total)
    return ends


def test_a_frame_over_the_limit_is_refused_from_its_prefix() -> None:
    reader = FrameReader(max_message_bytes=10)
    assert reader.feed(frame(b"x" * 10)) != []
    with pytest.raises(ProtocolError) as err:
        reader.feed(frame(b"x" * 11)[:5])  # only the prefix: no need to buffer the payload
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


@given(body=st.binary(max_size=500), pieces=st.integers(min_value=1, max_value=8), cuts=st.lists(st.integers(0, 2000)))
def test_base64_chunks_each_padded_and_split_anywhere(body: bytes, pieces: int, cuts: list[int]) -> None:
    size = max(1, math.ceil(len(body) / pieces))
    text = b"".join(base64.b64encode(body[i : i + size]) for i in range(0, len(body), size))
    decoder = Base64Decoder()
    out = b"".join(decoder.feed(chunk) for chunk in _split(text, cuts))
    decoder.finish()
    assert out == body


@pytest.mark.parametrize("bad", [b"ab!d", b"A===", b"=AAA", b"AA=A", b"AAAAA", b"AA==AA="])
def test_bad_base64_is_an_error(bad: bytes) -> None:
    def decode() -> None:
        decoder = Base64Decoder()
        decoder.feed(bad)
        decoder.finish()

    with pytest.raises(ProtocolError) as err:
        decode()
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("1H", 3600), ("2M", 120), ("3S", 3), ("250m", 0.25), ("100u", 1e-4), ("7n", 7e-9), ("99999999S", 99999999)],
)
def test_parse_timeout(header: str, seconds: float) -> None:
    assert parse_timeout(header) == pytest.approx(seconds)


@pytest.mark.parametrize("header", ["", "S", "1", "123456789S", "1.5S", "-1S", "1s", "1 S", "0x1S"])
def test_bad_timeouts(header: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_timeout(header)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def _grpc_core_encoded(seconds: float) -> float:
    """What grpc core sends for a timeout: rounded up to 1 ms (< 1 s), 10 ms (< 10 s), 100 ms (< 100 s), ..."""
    millis = math.ceil(seconds * 1000 - 1e-9)
    for limit, step in ((1_000, 1), (10_000, 10), (100_000, 100), (1_000_000, 1000)):
        if millis < limit:
            return math.ceil(millis / step) * step / 1000
    return math.ceil(millis / 10_000) * 10


@given(st.floats(min_value=0.0005, max_value=900.0))
def test_backend_timeouts_never_reach_past_the_client_deadline(seconds: float) -> None:
    sent = backend_timeout(seconds)
    assert 0 <= sent <= seconds
    assert _grpc_core_encoded(sent) <= seconds + 1e-9
    assert seconds - sent < max(0.001, seconds / 100) + 1e-6  # and loses at most one step


@given(st.text())
def test_grpc_message_round_trip(text: str) -> None:
    encoded = encode_grpc_message(text)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert decode_grpc_message(encoded) == text.encode("utf-8", errors="surrogatepass").decode("utf-8", "replace")


def test_trailers_block_round_trip() -> None:
    pairs = [("grpc-status", "0"), ("grpc-message", "ok"), ("X-Custom", "v")]
    block = trailers_block(pairs)
    assert block == b"grpc-status: 0\r\ngrpc-message: ok\r\nx-custom: v\r\n"
    assert parse_trailers_block(block) == [("grpc-status", "0"), ("grpc-message", "ok"), ("x-custom", "v")]


def test_content_types() -> None:
    assert parse_content_type("application/grpc-web").mode is Mode.BINARY
    assert parse_content_type("application/grpc-web+proto; charset=x").value == "application/grpc-web+proto"
    assert parse_content_type("application/grpc-web-text").mode is Mode.TEXT
    assert parse_content_type("APPLICATION/GRPC-WEB-TEXT+PROTO").mode is Mode.TEXT
    for bad in (None, "", "application/grpc", "application/grpc-web+json", "application/grpc-webx", "text/plain"):
        with pytest.raises(UnsupportedMediaType):
            parse_content_type(bad)


def test_gunzip_limits() -> None:
    assert gunzip(gzip.compress(b"a" * 100), 100) == b"a" * 100
    with pytest.raises(ProtocolError) as err:
        gunzip(gzip.compress(b"a" * 101), 100)
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    for bad in (b"nope", gzip.compress(b"a" * 100)[:-10]):
        with pytest.raises(ProtocolError) as err:
            gunzip(bad, 1000)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_request_metadata_filters_and_decodes() -> None:
    headers = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Authorization", "Bearer t"),
                ("X-Multi", "a"),
                ("X-Multi", "b"),
                ("X-Blob-Bin", "AAEC,/w"),
                ("Cookie", "c=1"),
                ("Grpc-Timeout", "1S"),
                ("Sec-Fetch-Mode", "cors"),
                ("Connection", "keep-alive, X-Private"),
                ("X-Private", "hop"),
                ("Content-Type", "application/grpc-web"),
                ("User-Agent", "browser"),
            ]
        )
    )
    md = request_metadata(headers, "192.0.2.1", None)
    assert md == [
        ("authorization", "Bearer t"),
        ("x-multi", "a"),
        ("x-multi", "b"),
        ("x-blob-bin", b"\x00\x01\x02"),
        ("x-blob-bin", b"\xff"),
        ("x-forwarded-for", "192.0.2.1"),
    ]
    for bad in ({"X-Ünï": "v"}, {"x-ok": "caf\u00e9"}, {"x-data-bin": "**"}):
        with pytest.raises(ProtocolError) as err:
            request_metadata(CIMultiDictProxy(CIMultiDict(bad)), "192.0.2.1", None)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_response_metadata_encodes_binary_and_drops_reserved() -> None:
    assert http_pairs([("x-a", "1"), ("x-b-bin", b"\x00\xff"), ("content-type", "x"), ("grpc-status", "0")]) == [
        ("x-a", "1"),
        ("x-b-bin", "AP8"),
    ]
