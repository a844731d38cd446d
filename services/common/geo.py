"""Where a client is: its address (as the transport or a trusted gateway says) and the region it maps to.

The region decides entitlements (a title's licensed regions) and what is recommended, so it never comes from a
request body: a field a player fills (``client.region``) is a hint for its UI at most.

Address: the transport peer, unless the peer is one of the configured ``trusted_proxies`` (the gateway, which
appends the address it received the call from to ``x-forwarded-for`` as a proxy does); then the chain is read
from the right, skipping trusted proxies, and the first address that is not one is the client's. A chain that
cannot be parsed leaves the last trusted hop as the client (never a value the client wrote).

Region, first answer wins: loopback addresses map to ``loopback_region`` (the all-in-one and its tests play
there); a GeoIP database in the MaxMind DB format (``database``, e.g. GeoLite2-Country, read with ``maxminddb``:
the record's ``country.iso_code``, else ``registered_country.iso_code``); the configured ``networks`` table, by
longest prefix (Traffic Control's coverage zones); ``default_region`` ("" = unknown, which licensed titles refuse).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import maxminddb

from services.common.config import LOOPBACK, GeoConfig

if TYPE_CHECKING:
    from aiohttp import web

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED_HOPS = 32


def _networks(texts: Iterable[str]) -> list[IpNetwork]:
    return [ipaddress.ip_network(t, strict=False) for t in texts]


def parse_address(text: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class PrefixTable:
    """Longest-prefix matching of addresses to values (one dict lookup per configured prefix length)."""

    def __init__(self, entries: Iterable[tuple[IpNetwork, str]]) -> None:
        self._tables: dict[tuple[int, int], dict[int, str]] = {}
        for net, value in entries:
            self._tables.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = value
        self._order = sorted(self._tables, key=lambda k: -k[1])

    def get(self, address: IpAddress) -> str | None:
        bits = 32 if address.version == 4 else 128
        value = int(address)
        for version, length in self._order:
            if version != address.version:
                continue
            mask = ((1 << length) - 1) << (bits - length) if length else 0
            found = self._tables[(version, length)].get(value & mask)
            if found is not None:
                return found
        return None


def network_layers(config: GeoConfig) -> list[list[tuple[str, str]]]:
    """The lookup layers for another process (the edges' data plane): the GeoIP database flattened into
    ``(network, region)`` pairs, then the configured table; loopback and the default are the config's own."""
    layers: list[list[tuple[str, str]]] = []
    if config.database is not None:
        with maxminddb.open_database(str(config.database)) as db:
            layers.append([(str(net), code) for net, record in db if (code := _country(record))])
    layers.append([(net, region) for region, nets in config.networks.items() for net in nets])
    return layers


class ForwardedFor:
    """The client's address behind trusted proxies: ``x-forwarded-for`` read from the right, skipping the
    ``trusted`` networks' hops; only a trusted peer's header is read at all (see the module's documentation)."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self._trusted = _networks(trusted)

    def trusted(self, address: IpAddress) -> bool:
        return any(address in net for net in self._trusted)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        client = parse_address(peer)
        if client is None:
            return peer[:64]
        if not forwarded_for or not self.trusted(client):
            return str(client)
        for hop in reversed(forwarded_for.split(",")[-MAX_FORWARDED_HOPS:]):
            address = parse_address(hop)
            if address is None:
                break
            client = address
            if not self.trusted(client):
                break
        return str(client)


class _Database(Protocol):
    def get(self, ip_address: str) -> Any: ...

    def close(self) -> None: ...


class Geo:
    """Client addresses and regions, from a :class:`GeoConfig` (see the module's documentation)."""

    def __init__(self, config: GeoConfig) -> None:
        self.config = config
        self._forwarded = ForwardedFor(config.trusted_proxies)
        self._loopback = _networks(LOOPBACK)
        self._table = PrefixTable((n, region) for region, nets in config.networks.items() for n in _networks(nets))
        self._db: _Database | None = maxminddb.open_database(str(config.database)) if config.database else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def trusted(self, address: IpAddress) -> bool:
        return self._forwarded.trusted(address)

    def client_address(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address from the transport ``peer`` and an ``x-forwarded-for`` chain (see above)."""
        return self._forwarded.client(peer, forwarded_for)

    def http_client(self, request: web.BaseRequest) -> tuple[str, str]:
        """The address and region of an HTTP request's client: its transport peer and its ``x-forwarded-for``
        headers (every one, in order, as one chain), read as :meth:`client_address` reads them."""
        forwarded = ", ".join(request.headers.getall("x-forwarded-for", [])) or None
        address = self.client_address(request.remote or "", forwarded)
        return address, self.region(address)

    def region(self, address: str) -> str:
        """The ISO 3166-1 alpha-2 region of ``address`` ("" when unknown)."""
        parsed = parse_address(address)
        if parsed is None:
            return self.config.default_region
        if any(parsed in net for net in self._loopback):
            return self.config.loopback_region
        if self._db is not None:
            try:
                found = _country(self._db.get(str(parsed)))
            except ValueError:  # an IPv6 address in an IPv4-only database
                found = None
            if found:
                return found
        return self._table.get(parsed) or self.config.default_region


def _country(record: Any) -> str | None:
    if not isinstance(record, Mapping):
        return None
    for key in ("country", "registered_country"):
        entry = record.get(key)
        code = entry.get("iso_code") if isinstance(entry, Mapping) else None
        if isinstance(code, str) and len(code) == 2 and code.isalpha():
            return code.upper()
    return None
