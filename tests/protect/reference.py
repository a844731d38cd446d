"""A reference Common Encryption reader and decryptor, written apart from the Rust packager: it reads only what the
files say (schm, tenc, pssh, senc, saiz, saio), decrypts with the `cryptography` package, and undoes the packaging
(encv/enca back to the original format, sinf, pssh, senc, saiz and saio removed, trun offsets moved back), so a
round trip can be checked byte for byte against the clear files.

It follows ISO/IEC 23001-7: 'cenc' is AES-CTR over the protected bytes of a sample as one stream from the
sample's IV (an 8-byte IV is the high half of the counter block); 'cbcs' is AES-CBC from the constant IV, restarted
at each subsample, over the encrypted blocks of the crypt:skip pattern (0:0 meaning every whole block), with
partial blocks clear.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from services.encoder.media.cmaf import Box, boxes

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"sinf", b"schi"}
VISUAL_FIELDS = 78
AUDIO_FIELDS = 28
COMMON_SYSTEM_ID = bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b")


class ReferenceError(Exception):
    """The protected file does not say what Common Encryption requires."""


@dataclass(frozen=True)
class Tenc:
    scheme: str
    key_id: bytes
    iv_size: int
    constant_iv: bytes | None
    crypt: int
    skip: int


@dataclass(frozen=True)
class ProtectedTrack:
    track_id: int
    entry: bytes  # encv / enca
    original_format: bytes
    tenc: Tenc


@dataclass(frozen=True)
class Pssh:
    system_id: bytes
    key_ids: tuple[bytes, ...]
    data: bytes


@dataclass
class ProtectedInit:
    tracks: dict[int, ProtectedTrack] = field(default_factory=dict)
    pssh: list[Pssh] = field(default_factory=list)
    default_sizes: dict[int, int] = field(default_factory=dict)


def _child(data: bytes, parent: Box, kind: bytes, skip: int = 0) -> Box:
    for b in boxes(data, parent.body + skip, parent.end):
        if b.type == kind:
            return b
    raise ReferenceError(f"{parent.type!r} has no {kind!r}")


def _entry_fields(data: bytes, entry: Box) -> int:
    if entry.type == b"encv":
        return VISUAL_FIELDS
    (version,) = struct.unpack_from(">H", data, entry.body + 8)
    return AUDIO_FIELDS + {0: 0, 1: 16, 2: 36}[version]


def parse_pssh(data: bytes, b: Box) -> Pssh:
    pos = b.body
    version = data[pos]
    system_id = data[pos + 4 : pos + 20]
    pos += 20
    kids: list[bytes] = []
    if version == 1:
        (count,) = struct.unpack_from(">I", data, pos)
        pos += 4
        kids = [data[pos + 16 * i : pos + 16 * (i + 1)] for i in range(count)]
        pos += 16 * count
    (size,) = struct.unpack_from(">I", data, pos)
    if pos + 4 + size != b.end:
        raise ReferenceError("pssh data size does not match the box")
    return Pssh(system_id, tuple(kids), data[pos + 4 : pos + 4 + size])


def _parse_tenc(data: bytes, tenc: Box, scheme: str) -> Tenc:
    pos = tenc.body
    version = data[pos]
    pattern = data[pos + 5]
    crypt, skip = (pattern >> 4, pattern & 0x0F) if version >= 1 else (0, 0)
    if data[pos + 6] != 1:
        raise ReferenceError("default_isProtected is not 1")
    iv_size = data[pos + 7]
    key_id = data[pos + 8 : pos + 24]
    constant_iv = None
    if iv_size == 0:
        n = data[pos + 24]
        constant_iv = data[pos + 25 : pos + 25 + n]
    return Tenc(scheme, key_id, iv_size, constant_iv, crypt, skip)


def parse_init(data: bytes) -> ProtectedInit:
    out = ProtectedInit()
    moov = next(b for b in boxes(data) if b.type == b"moov")
    for b in boxes(data, moov.body, moov.end):
        if b.type == b"pssh":
            out.pssh.append(parse_pssh(data, b))
        elif b.type == b"mvex":
            for trex in boxes(data, b.body, b.end):
                if trex.type == b"trex":
                    track_id, _, _, size = struct.unpack_from(">IIII", data, trex.body + 4)
                    out.default_sizes[track_id] = size
        elif b.type == b"trak":
            tkhd = _child(data, b, b"tkhd")
            offset = 20 if data[tkhd.body] == 1 else 12
            (track_id,) = struct.unpack_from(">I", data, tkhd.body + offset)
            stbl = _child(data, _child(data, _child(data, b, b"mdia"), b"minf"), b"stbl")
            stsd = _child(data, stbl, b"stsd")
            entry = next(boxes(data, stsd.body + 8, stsd.end))
            if entry.type not in (b"encv", b"enca"):
                continue
            sinf = _child(data, entry, b"sinf", _entry_fields(data, entry))
            frma = _child(data, sinf, b"frma")
            schm = _child(data, sinf, b"schm")
            scheme = data[schm.body + 4 : schm.body + 8].decode()
            tenc = _child(data, _child(data, sinf, b"schi"), b"tenc")
            original = data[frma.body : frma.body + 4]
            out.tracks[track_id] = ProtectedTrack(track_id, entry.type, original, _parse_tenc(data, tenc, scheme))
    return out


Edit = Callable[[Box], bytes] | None


def _rebuild(data: bytes, box: Box, edit: Mapping[bytes, Edit], prefix: int = 0) -> bytes:
    """`box` with its children rebuilt: `edit[type]` is None to drop a child, or a function returning new bytes."""
    body = data[box.body : box.body + prefix]
    for child in boxes(data, box.body + prefix, box.end):
        if child.type not in edit:
            body += data[child.start : child.end]
            continue
        action = edit[child.type]
        if action is not None:
            body += action(child)
    return struct.pack(">I4s", 8 + len(body), box.type) + body


def clear_init(data: bytes) -> bytes:
    """The init segment as it was before protection: entries renamed back, sinf and pssh removed."""

    def entry(e: Box) -> bytes:
        fields = _entry_fields(data, e)
        original = data[_child(data, _child(data, e, b"sinf", fields), b"frma").body :][:4]
        rebuilt = _rebuild(data, e, {b"sinf": None}, prefix=fields)
        return rebuilt[:4] + original + rebuilt[8:]

    def stsd(b: Box) -> bytes:
        return _rebuild(data, b, {b"encv": entry, b"enca": entry}, prefix=8)

    def down(path: list[bytes]) -> Callable[[Box], bytes]:
        if not path:
            return stsd
        return lambda b: _rebuild(data, b, {path[0]: down(path[1:])})

    out = b""
    for top in boxes(data):
        if top.type == b"moov":
            trak = down([b"mdia", b"minf", b"stbl", b"stsd"])
            out += _rebuild(data, top, {b"pssh": None, b"trak": trak})
        else:
            out += data[top.start : top.end]
    return out


@dataclass
class _Traf:
    track_id: int
    sizes: list[int]
    data_offset: int
    ivs: list[bytes]
    subsamples: list[list[tuple[int, int]] | None]


def _read_traf(data: bytes, moof: Box, traf: Box, init: ProtectedInit) -> _Traf | None:
    """The samples of a traf and their encryption; None for a traf without samples."""
    kids = {b.type: b for b in boxes(data, traf.body, traf.end)}
    if b"trun" not in kids:
        return None
    tfhd = kids[b"tfhd"]
    flags = int.from_bytes(data[tfhd.body + 1 : tfhd.body + 4], "big")
    (track_id,) = struct.unpack_from(">I", data, tfhd.body + 4)
    pos = tfhd.body + 8 + (8 if flags & 1 else 0) + (4 if flags & 2 else 0) + (4 if flags & 8 else 0)
    default_size = struct.unpack_from(">I", data, pos)[0] if flags & 0x10 else init.default_sizes.get(track_id, 0)
    trun = kids[b"trun"]
    tflags = int.from_bytes(data[trun.body + 1 : trun.body + 4], "big")
    count, data_offset = struct.unpack_from(">Ii", data, trun.body + 4)
    if count == 0:
        return None
    pos = trun.body + 12 + (4 if tflags & 4 else 0)
    sizes = []
    for _ in range(count):
        pos += 4 if tflags & 0x100 else 0
        size = struct.unpack_from(">I", data, pos)[0] if tflags & 0x200 else default_size
        pos += (4 if tflags & 0x200 else 0) + (4 if tflags & 0x400 else 0) + (4 if tflags & 0x800 else 0)
        sizes.append(size)
    track = init.tracks[track_id]
    senc = kids[b"senc"]
    senc_flags = int.from_bytes(data[senc.body + 1 : senc.body + 4], "big")
    (entries,) = struct.unpack_from(">I", data, senc.body + 4)
    if entries != count:
        raise ReferenceError(f"senc has {entries} entries for {count} samples")
    pos = senc.body + 8
    first_entry = pos
    ivs: list[bytes] = []
    subsamples: list[list[tuple[int, int]] | None] = []
    info_sizes: list[int] = []
    for _ in range(count):
        start = pos
        ivs.append(data[pos : pos + track.tenc.iv_size])
        pos += track.tenc.iv_size
        if senc_flags & 2:
            (n,) = struct.unpack_from(">H", data, pos)
            pairs = [struct.unpack_from(">HI", data, pos + 2 + 6 * i) for i in range(n)]
            subsamples.append([(int(c), int(p)) for c, p in pairs])
            pos += 2 + 6 * n
        else:
            subsamples.append(None)
        info_sizes.append(pos - start)
    if pos != senc.end:
        raise ReferenceError("senc has bytes after its entries")
    if any(info_sizes):
        saiz, saio = kids.get(b"saiz"), kids.get(b"saio")
        if saiz is None or saio is None:
            raise ReferenceError("samples have auxiliary information but no saiz/saio")
        default, n = struct.unpack_from(">BI", data, saiz.body + 4)
        declared = [default] * n if default else list(data[saiz.body + 9 : saiz.body + 9 + n])
        if declared != info_sizes:
            raise ReferenceError("saiz sizes do not match senc")
        entry_count, offset = struct.unpack_from(">II", data, saio.body + 4)
        if entry_count != 1 or moof.start + offset != first_entry:
            raise ReferenceError(f"saio offset {offset} is not the senc data at {first_entry - moof.start}")
    return _Traf(track_id, sizes, data_offset, ivs, subsamples)


def _decrypt_sample(sample: bytearray, tenc: Tenc, key: bytes, iv: bytes, subs: list[tuple[int, int]] | None) -> None:
    ranges: list[tuple[int, int]] = []
    pos = 0
    for clear, protected in subs if subs is not None else [(0, len(sample))]:
        pos += clear
        ranges.append((pos, pos + protected))
        pos += protected
    if pos != len(sample):
        raise ReferenceError(f"subsamples cover {pos} of {len(sample)} bytes")
    if tenc.scheme == "cenc":
        counter = iv + bytes(16 - len(iv))
        ctr = Cipher(algorithms.AES(key), modes.CTR(counter)).decryptor()
        for start, end in ranges:
            sample[start:end] = ctr.update(bytes(sample[start:end]))
        return
    if tenc.scheme != "cbcs" or tenc.constant_iv is None:
        raise ReferenceError(f"scheme {tenc.scheme}")
    crypt, skip = (tenc.crypt, tenc.skip) if (tenc.crypt, tenc.skip) != (0, 0) else (1, 0)
    for start, end in ranges:
        blocks = [start + 16 * i for i in range((end - start) // 16)]
        chosen = [b for i, b in enumerate(blocks) if i % (crypt + skip) < crypt]
        if not chosen:
            continue
        cbc = Cipher(algorithms.AES(key), modes.CBC(tenc.constant_iv)).decryptor()
        plain = cbc.update(b"".join(bytes(sample[b : b + 16]) for b in chosen)) + cbc.finalize()
        for i, b in enumerate(chosen):
            sample[b : b + 16] = plain[16 * i : 16 * (i + 1)]


def decrypt_segment(data: bytes, init: ProtectedInit, keys: Mapping[bytes, bytes]) -> bytes:
    """The clear media segment: samples decrypted, senc/saiz/saio removed and trun data offsets moved back."""
    tops = list(boxes(data))
    out = b""
    i = 0
    while i < len(tops):
        top = tops[i]
        if top.type != b"moof":
            out += data[top.start : top.end]
            i += 1
            continue
        mdat = tops[i + 1]
        payload = bytearray(data[mdat.start : mdat.end])
        trafs = [b for b in boxes(data, top.body, top.end) if b.type == b"traf"]
        for traf in trafs:
            t = _read_traf(data, top, traf, init)
            if t is None:
                continue
            track = init.tracks[t.track_id]
            pos = top.start + t.data_offset - mdat.start
            for size, iv, subs in zip(t.sizes, t.ivs, t.subsamples, strict=True):
                sample = payload[pos : pos + size]
                _decrypt_sample(sample, track.tenc, keys[track.tenc.key_id], iv, subs)
                payload[pos : pos + size] = sample
                pos += size
        added = (b"senc", b"saiz", b"saio")
        removed = sum(b.size for t in trafs for b in boxes(data, t.body, t.end) if b.type in added)

        def trun(b: Box, removed: int = removed) -> bytes:
            raw = bytearray(data[b.start : b.end])
            (offset,) = struct.unpack_from(">i", raw, 16)
            struct.pack_into(">i", raw, 16, offset - removed)
            return bytes(raw)

        def traf_edit(b: Box, trun: Callable[[Box], bytes] = trun) -> bytes:
            return _rebuild(data, b, {b"senc": None, b"saiz": None, b"saio": None, b"trun": trun})

        out += _rebuild(data, top, {b"traf": traf_edit}) + bytes(payload)
        i += 2
    return out


def hls_aes128_decrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    cbc = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = cbc.update(data) + cbc.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()
