"""A minimal writer of the MaxMind DB format (maxmind.github.io/MaxMind-DB, version 2.0), for the small GeoIP
databases the tests and the dev set-up build themselves: an IPv6 tree (IPv4 networks under ::/96, where readers
look IPv4 addresses up), 24-bit records, and data of maps, strings and unsigned integers. Enough to be read by
the real reader (PyPI ``maxminddb``) exactly as a GeoLite2-Country database is."""

from __future__ import annotations

import ipaddress
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
RECORD_BITS = 24
EMPTY = -1  # a record leading nowhere


@dataclass(frozen=True)
class Uint:
    """An unsigned integer of an explicit type (readers check the metadata's types: uint16, uint32, uint64)."""

    value: int
    bits: int = 32


_UINT_TYPES = {16: 5, 32: 6, 64: 9}


@dataclass
class _Node:
    # each child: another node's index, EMPTY, or ("data", offset)
    children: list[Any] = field(default_factory=lambda: [EMPTY, EMPTY])


def _size_prefix(type_bits: int, size: int) -> bytes:
    """The control byte(s) of a value of ``type_bits`` (an extended type is 8 and above) and ``size``."""
    if size < 29:
        head, tail = size, b""
    elif size < 29 + 256:
        head, tail = 29, bytes([size - 29])
    elif size < 285 + 65536:
        head, tail = 30, struct.pack(">H", size - 285)
    else:
        head, tail = 31, struct.pack(">I", size - 65821)[1:]
    if type_bits < 8:
        return bytes([(type_bits << 5) | head]) + tail
    return bytes([head, type_bits - 7]) + tail


def encode(value: Any) -> bytes:
    """One value in the data section's encoding (maps, lists, strings, booleans, unsigned integers)."""
    if isinstance(value, bool):
        return _size_prefix(14, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _size_prefix(2, len(raw)) + raw
    if isinstance(value, int):
        return encode(Uint(value, 16 if 0 <= value < 1 << 16 else 32 if value < 1 << 32 else 64))
    if isinstance(value, Uint):
        if not 0 <= value.value < 1 << value.bits:
            raise ValueError(f"{value.value} is not a uint{value.bits}")
        raw = value.value.to_bytes((value.value.bit_length() + 7) // 8, "big")
        return _size_prefix(_UINT_TYPES[value.bits], len(raw)) + raw
    if isinstance(value, Mapping):
        return _size_prefix(7, len(value)) + b"".join(encode(str(k)) + encode(v) for k, v in value.items())
    if isinstance(value, Sequence):
        return _size_prefix(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def build(networks: Mapping[str, Mapping[str, Any]], *, database_type: str = "Marquee-Test-Country") -> bytes:
    """A database mapping each network (``"203.0.113.0/24"``, ``"2001:db8::/32"``) to its record."""
    nodes = [_Node()]
    data = bytearray()
    offsets: dict[bytes, int] = {}
    # general networks first, so a more specific one splits the leaf it falls in
    parsed = sorted(
        ((ipaddress.ip_network(n), r) for n, r in networks.items()),
        key=lambda nr: nr[0].prefixlen + (96 if nr[0].version == 4 else 0),
    )
    for net, record in parsed:
        blob = encode(record)
        if blob not in offsets:
            offsets[blob] = len(data)
            data += blob
        # IPv4 lives under ::/96 in an IPv6 tree: its 32 bits follow 96 zero bits
        bits, length = int(net.network_address), net.prefixlen + (96 if net.version == 4 else 0)
        node = 0
        for depth in range(length):
            bit = (bits >> (127 - depth)) & 1
            if depth == length - 1:
                nodes[node].children[bit] = ("data", offsets[blob])
                break
            child = nodes[node].children[bit]
            if not isinstance(child, int) or child == EMPTY:
                nodes.append(_Node([child, child] if isinstance(child, tuple) else [EMPTY, EMPTY]))
                nodes[node].children[bit] = len(nodes) - 1
            node = nodes[node].children[bit]
    count = len(nodes)

    def record_value(child: Any) -> int:
        if isinstance(child, tuple):
            return count + 16 + int(child[1])
        return count if child == EMPTY else int(child)

    tree = b"".join(
        record_value(n.children[0]).to_bytes(3, "big") + record_value(n.children[1]).to_bytes(3, "big") for n in nodes
    )
    metadata = {
        "binary_format_major_version": Uint(2, 16),
        "binary_format_minor_version": Uint(0, 16),
        "build_epoch": Uint(int(time.time()), 64),
        "database_type": database_type,
        "description": {"en": "Built by Marquee's tests"},
        "ip_version": Uint(6, 16),
        "languages": ["en"],
        "node_count": Uint(count, 32),
        "record_size": Uint(RECORD_BITS, 16),
    }
    return tree + bytes(16) + bytes(data) + METADATA_MARKER + encode(metadata)


def write_country_db(path: Path, countries: Mapping[str, str]) -> Path:
    """A GeoLite2-Country-shaped database: network -> ISO 3166-1 alpha-2 code."""
    path.write_bytes(build({net: {"country": {"iso_code": code}} for net, code in countries.items()}))
    return path
