"""Which source address counts as a given peer, and which peers may talk to us at all.

The sans-I/O core routes by what URIs say, which may be host names; the I/O layer resolves
them and reports each resolution (`KnownNames.learn`), so the core can tell whether a
datagram from an IP address came from the host it sent a request to. A name the core was
never told about matches nothing: a response can only come after we sent, hence after the
name was resolved.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable

Address = tuple[str, int]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """Networks from strings such as "192.0.2.0/24", "2001:db8::1" (a single host) or
    already parsed networks; raises ValueError naming the bad entry."""
    networks = []
    for value in values:
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(value)
            continue
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return tuple(networks)


def ip_of(host: str) -> IPAddress | None:
    """The address a host string denotes if it is an IP literal (brackets allowed)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    # An IPv4 peer seen through a dual-stack socket arrives as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AllowedPeers:
    """An allowlist of networks; addresses outside every network are refused."""

    def __init__(self, networks: Iterable[str | IPNetwork]) -> None:
        self.networks = parse_networks(networks)

    def allows(self, host: str) -> bool:
        address = ip_of(host)
        if address is None:
            return False
        return any(address in network for network in self.networks)


class KnownNames:
    """Host name -> IP address, as the I/O layer resolved it; bounded, least recent out."""

    def __init__(self, max_names: int = 1024) -> None:
        self._max = max_names
        self._names: OrderedDict[str, IPAddress] = OrderedDict()

    def learn(self, name: str, address: str) -> None:
        ip = ip_of(address)
        if ip is None:
            return
        key = name.strip("[]").lower()
        self._names[key] = ip
        self._names.move_to_end(key)
        while len(self._names) > self._max:
            self._names.popitem(last=False)

    def address_of(self, host: str) -> IPAddress | None:
        """The IP address `host` stands for: itself if a literal, else what was learned."""
        literal = ip_of(host)
        if literal is not None:
            return literal
        return self._names.get(host.strip("[]").lower())

    def is_same(self, expected: Address, source: Address, *, match_port: bool = True) -> bool:
        """True if a packet from `source` comes from the peer we know as `expected`."""
        if match_port and expected[1] != source[1]:
            return False
        wanted = self.address_of(expected[0])
        return wanted is not None and wanted == ip_of(source[0])
