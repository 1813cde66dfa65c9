"""The visitor's address behind trusted reverse proxies, and only behind them."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.http.forwarded import parse_networks, visitor_address

TRUSTED = parse_networks(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "visitor"),
    [
        # nginx on the same machine appended the visitor's address.
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        # The visitor's own claim is left of what our proxy wrote: not believed.
        ("127.0.0.1", "203.0.113.99, 198.51.100.7", "198.51.100.7"),
        # Two of our proxies in a row: past both.
        ("127.0.0.1", "198.51.100.7, 10.1.2.3", "198.51.100.7"),
        ("127.0.0.1", "2001:db9::1, 2001:db8::5", "2001:db9::1"),
        ("127.0.0.1", "::ffff:198.51.100.7", "198.51.100.7"),
        # Junk before our proxy's hop: the last address we could read.
        ("127.0.0.1", "junk, 10.1.2.3", "10.1.2.3"),
        ("127.0.0.1", "", "127.0.0.1"),
        # Not from a proxy of ours: its own address, whatever it claims.
        ("198.51.100.7", "10.0.0.1", "198.51.100.7"),
        ("192.0.2.1", "127.0.0.1", "192.0.2.1"),
        # No header.
        ("127.0.0.1", None, "127.0.0.1"),
    ],
)
def test_visitor_address(peer: str, forwarded_for: str | None, visitor: str) -> None:
    assert visitor_address(peer, forwarded_for, TRUSTED) == visitor


def test_no_trusted_proxies_means_the_peer() -> None:
    assert visitor_address("127.0.0.1", "198.51.100.7", ()) == "127.0.0.1"


def test_bad_networks_are_named() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33'")):
        parse_networks(["10.0.0.0/33"])


def _addresses(header: str) -> set[str]:
    found = set()
    for hop in header.split(","):
        try:
            ip = ipaddress.ip_address(hop.strip())
        except ValueError:
            continue
        mapped = getattr(ip, "ipv4_mapped", None)
        found.add(str(mapped or ip))
    return found


@given(
    st.lists(st.one_of(st.ip_addresses().map(str), st.text(max_size=20)), max_size=25).map(
        ", ".join
    )
)
def test_any_header_gives_the_peer_or_an_address_written_in_it(header: str) -> None:
    visitor = visitor_address("127.0.0.1", header, TRUSTED)
    assert visitor == "127.0.0.1" or visitor in _addresses(header)
