"""Coverage zones: client address -> zone -> edge groups, by longest prefix match.

The file is JSON in the spirit of Apache Traffic Control's coverage zone file::

    {"coverageZones": {
        "east": {"network": ["10.1.0.0/16"], "network6": ["2001:db8:1::/48"], "edgeGroups": ["east", "core"]},
        "west": {"network": ["10.2.0.0/16"]}}}

``edgeGroups`` defaults to the zone's own name; an edge belongs to the group named by its ``zone``."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_NETWORKS = 1_000_000


class CoverageError(ValueError):
    """The coverage zone file is malformed (the message names the zone and network)."""


@dataclass(frozen=True)
class Zone:
    name: str
    edge_groups: tuple[str, ...]


@dataclass
class CoverageZones:
    """Longest-prefix matching over every zone's networks (one hash lookup per prefix length)."""

    zones: dict[str, Zone] = field(default_factory=dict)
    _v4: dict[int, dict[int, str]] = field(default_factory=dict)
    _v6: dict[int, dict[int, str]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CoverageZones:
        cz = cls()
        zones = doc.get("coverageZones")
        if not isinstance(zones, dict):
            raise CoverageError("the file must hold an object 'coverageZones'")
        count = 0
        for name, spec in zones.items():
            if not isinstance(spec, dict):
                raise CoverageError(f"zone {name!r} must be an object")
            groups = spec.get("edgeGroups", [name])
            if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
                raise CoverageError(f"zone {name!r}: edgeGroups must be a list of names")
            cz.zones[name] = Zone(name, tuple(groups))
            for key, version in (("network", 4), ("network6", 6)):
                for text in spec.get(key, []):
                    try:
                        net = ipaddress.ip_network(text, strict=False)
                    except ValueError as exc:
                        raise CoverageError(f"zone {name!r}: {exc}") from exc
                    if net.version != version:
                        raise CoverageError(f"zone {name!r}: {text} is not IPv{version} (list it under the other key)")
                    table = cz._v4 if version == 4 else cz._v6
                    table.setdefault(net.prefixlen, {})[int(net.network_address)] = name
                    count += 1
                    if count > MAX_NETWORKS:
                        raise CoverageError(f"more than {MAX_NETWORKS} networks")
        return cz

    @classmethod
    def load(cls, path: Path) -> CoverageZones:
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CoverageError(f"{path}: {exc}") from exc
        return cls.from_dict(doc)

    def match(self, address: IpAddress) -> Zone | None:
        """The zone whose most specific network holds ``address``."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        table, bits = (self._v4, 32) if address.version == 4 else (self._v6, 128)
        value = int(address)
        for length in sorted(table, reverse=True):
            mask = ((1 << length) - 1) << (bits - length) if length else 0
            name = table[length].get(value & mask)
            if name is not None:
                return self.zones[name]
        return None
