"""ISO-BMFF (MP4) box reading: split a fragmented MP4 into a CMAF init segment and media segments, and read the
facts the media description needs (timescale, per-segment durations, keyframe byte ranges, codecs strings)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.encoder.media.errors import MediaError

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex", b"dinf", b"edts"}


@dataclass(frozen=True)
class Box:
    type: bytes
    start: int  # offset of the box header in the buffer
    header: int  # header length (8 or 16)
    size: int  # whole box length

    @property
    def body(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise MediaError("truncated 64-bit box header")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise MediaError(f"box {kind!r} at {pos} has a bad size {size}")
        yield Box(kind, pos, header, size)
        pos += size


def find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> Box | None:
    """The first box along ``path`` (e.g. [b"moov", b"trak", b"mdia", b"mdhd"])."""
    for box in boxes(data, start, end):
        if box.type == path[0]:
            if len(path) == 1:
                return box
            return find(data, path[1:], box.body, box.end)
    return None


def _full_box(data: bytes, box: Box) -> tuple[int, int, int]:
    """(version, flags, offset of the content after version/flags)."""
    version = data[box.body]
    flags = int.from_bytes(data[box.body + 1 : box.body + 4], "big")
    return version, flags, box.body + 4


def timescale(init: bytes) -> int:
    mdhd = find(init, [b"moov", b"trak", b"mdia", b"mdhd"])
    if mdhd is None:
        raise MediaError("init segment has no mdhd")
    version, _, pos = _full_box(init, mdhd)
    pos += 16 if version == 1 else 8  # creation + modification times
    (ts,) = struct.unpack_from(">I", init, pos)
    return int(ts)


def trex_defaults(init: bytes) -> tuple[int, int]:
    """(default_sample_duration, default_sample_size) of the movie's trex, (0, 0) without one."""
    trex = find(init, [b"moov", b"mvex", b"trex"])
    if trex is None:
        return 0, 0
    _, _, pos = _full_box(init, trex)
    # track_ID, default_sample_description_index, default_sample_duration, default_sample_size, flags
    _, _, duration, size, _ = struct.unpack_from(">IIIII", init, pos)
    return int(duration), int(size)


@dataclass(frozen=True)
class FragmentInfo:
    duration: int  # timescale units
    first_sample_end: int  # offset (from the moof start) just past the first sample's data
    decode_time: int


def fragment_info(data: bytes, moof: Box, defaults: tuple[int, int]) -> FragmentInfo:
    """Duration of a fragment (sum of its samples) and where its first sample ends, from tfhd/tfdt/trun."""
    traf = find(data, [b"traf"], moof.body, moof.end)
    if traf is None:
        raise MediaError("moof without traf")
    default_duration, default_size = defaults
    decode_time = 0
    duration = 0
    first_end = 0
    for box in boxes(data, traf.body, traf.end):
        if box.type == b"tfhd":
            _, flags, pos = _full_box(data, box)
            pos += 4  # track_ID
            if flags & 0x01:
                pos += 8  # base_data_offset
            if flags & 0x02:
                pos += 4  # sample_description_index
            if flags & 0x08:
                (default_duration,) = struct.unpack_from(">I", data, pos)
                pos += 4
            if flags & 0x10:
                (default_size,) = struct.unpack_from(">I", data, pos)
        elif box.type == b"tfdt":
            version, _, pos = _full_box(data, box)
            (decode_time,) = struct.unpack_from(">Q" if version == 1 else ">I", data, pos)
        elif box.type == b"trun":
            _, flags, pos = _full_box(data, box)
            (count,) = struct.unpack_from(">I", data, pos)
            pos += 4
            data_offset = 0
            if flags & 0x01:
                (data_offset,) = struct.unpack_from(">i", data, pos)
                pos += 4
            if flags & 0x04:
                pos += 4  # first_sample_flags
            for i in range(count):
                d, s = default_duration, default_size
                if flags & 0x100:
                    (d,) = struct.unpack_from(">I", data, pos)
                    pos += 4
                if flags & 0x200:
                    (s,) = struct.unpack_from(">I", data, pos)
                    pos += 4
                if flags & 0x400:
                    pos += 4
                if flags & 0x800:
                    pos += 4
                duration += d
                if i == 0 and first_end == 0:
                    first_end = data_offset + s
    return FragmentInfo(duration, first_end, int(decode_time))


@dataclass(frozen=True)
class SegmentFile:
    number: int
    path: Path
    duration: int
    size: int
    keyframe: tuple[int, int]  # (offset, length) within the segment file


def split(fragmented: Path, out_dir: Path, media_template: str = "seg-{n}.m4s") -> tuple[int, list[SegmentFile]]:
    """Write ``init.mp4`` and one file per fragment (styp? + moof + mdat) into ``out_dir``.

    Returns the track timescale and the segments in order."""
    data = fragmented.read_bytes()
    top = list(boxes(data))
    moov = next((b for b in top if b.type == b"moov"), None)
    if moov is None:
        raise MediaError("fragmented MP4 has no moov")
    init = b"".join(data[b.start : b.end] for b in top if b.type in (b"ftyp", b"moov"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "init.mp4").write_bytes(init)
    ts = timescale(init)
    defaults = trex_defaults(init)
    segments: list[SegmentFile] = []
    pending_prefix = b""
    i = 0
    while i < len(top):
        box = top[i]
        if box.type == b"styp":
            pending_prefix = data[box.start : box.end]
        elif box.type == b"moof":
            mdat = top[i + 1] if i + 1 < len(top) else None
            if mdat is None or mdat.type != b"mdat":
                raise MediaError("moof is not followed by mdat")
            info = fragment_info(data, box, defaults)
            body = pending_prefix + data[box.start : mdat.end]
            n = len(segments) + 1
            path = out_dir / media_template.format(n=n)
            path.write_bytes(body)
            keyframe_len = len(pending_prefix) + info.first_sample_end
            segments.append(SegmentFile(n, path, info.duration, len(body), (0, keyframe_len)))
            pending_prefix = b""
            i += 1
        i += 1
    if not segments:
        raise MediaError("fragmented MP4 has no fragments")
    return ts, segments


def avc_codecs(init: bytes) -> str:
    """`avc1.PPCCLL` from the avcC box (profile, constraint flags, level of the real stream)."""
    stsd = find(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if stsd is None:
        raise MediaError("init segment has no stsd")
    idx = init.find(b"avcC", stsd.body, stsd.end)
    if idx < 0:
        raise MediaError("video track has no avcC")
    body = idx + 4
    profile, compat, level = init[body + 1], init[body + 2], init[body + 3]
    return f"avc1.{profile:02x}{compat:02x}{level:02x}"


def aac_codecs(init: bytes) -> str:
    """`mp4a.40.N` with N the AudioSpecificConfig's object type (2 for AAC-LC)."""
    stsd = find(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if stsd is None:
        raise MediaError("init segment has no stsd")
    idx = init.find(b"esds", stsd.body, stsd.end)
    if idx < 0:
        raise MediaError("audio track has no esds")
    pos = idx + 8  # past 'esds' + version/flags
    end = stsd.end
    while pos < end:
        tag = init[pos]
        pos += 1
        length = 0
        for _ in range(4):
            b = init[pos]
            pos += 1
            length = (length << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        if tag == 0x03:  # ES_Descriptor: ES_ID(2) + flags(1), then nested descriptors
            flags = init[pos + 2]
            pos += (
                3 + (2 if flags & 0x80 else 0) + (1 + init[pos + 3] if flags & 0x40 else 0) + (2 if flags & 0x20 else 0)
            )
        elif tag == 0x04:  # DecoderConfigDescriptor: 13 bytes, then DecoderSpecificInfo
            pos += 13
        elif tag == 0x05:
            object_type = init[pos] >> 3
            return f"mp4a.40.{object_type}"
        else:
            pos += length
    raise MediaError("esds has no AudioSpecificConfig")
