"""The visitor's address behind reverse proxies we trust (`http.trusted_proxies`).

A proxy appends the address it received the request from to `X-Forwarded-For`; read from
the right, every hop that is one of our proxies vouches for the one before it, and the
first address that is not ours is the visitor. Anything left of it was written by the
visitor and is not believed. A request that does not come from a trusted proxy keeps its
peer address, whatever it claims.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 20  # a longer chain is not a real one: stop reading there


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks; ValueError names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {entry!r}") from None
    return tuple(networks)


def visitor_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The visitor's address of a request from `peer` with that X-Forwarded-For header."""
    if not trusted or forwarded_for is None or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")][-MAX_HOPS:]
    address = peer
    for hop in reversed(hops):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            return address  # junk from the visitor's side: the last hop we could read
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        address = str(ip)
        if not is_trusted(address, trusted):
            return address
    return address


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in trusted)
