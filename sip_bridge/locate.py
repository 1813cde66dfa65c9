"""Locating SIP servers (RFC 3263 §4): from a SIP URI to the addresses to try, in order.

Sans-I/O: a `Locator` asks one DNS question at a time (`next_query()`), is given the
answer (`answer(query, records)`), and ends with `targets`, the (IP, port) pairs in the
order RFC 3263 says to try them; the user agent fails over to the next on a timeout, a
transport error or a 503. The asyncio layer (`sip_bridge.asyncio.resolver`) asks a real DNS
server and keeps answers in a `DnsCache` for their TTL.

For a URI with a domain name and no port:

1. NAPTR of the domain: records with flag "s" for our transport (`SIP+D2U` UDP, `SIP+D2T`
   TCP, `SIPS+D2T` TLS), by order then preference, give SRV names;
2. without a usable NAPTR, the SRV name of our transport: `_sip._udp.<domain>`,
   `_sip._tcp.<domain>`, `_sips._tcp.<domain>`;
3. SRV records: lowest priority first, and within one priority a weighted random order
   (RFC 2782); each target's A (then AAAA) records with the SRV's port;
4. without SRV records, the domain's A (then AAAA) records with the default port.

An IP address is used as it is; a name with an explicit port skips NAPTR and SRV (§4.2).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sip_bridge.uri import SipUri

Address = tuple[str, int]

NAPTR_SERVICES = {"udp": "SIP+D2U", "tcp": "SIP+D2T", "tls": "SIPS+D2T"}
SRV_PREFIXES = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
MAX_TARGETS = 16  # addresses kept from one resolution: each is a possible retry
MAX_SRV_QUERIES = 4  # NAPTR records followed
MAX_HOST_QUERIES = 8  # SRV targets looked up


@dataclass(frozen=True, slots=True)
class Query:
    name: str  # without the trailing dot
    rtype: str  # "NAPTR" | "SRV" | "A" | "AAAA"


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str  # the SRV name to look up, without the trailing dot


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # host name, without the trailing dot; "" or "." means no service


Record = NaptrRecord | SrvRecord | str  # str: an address of an A or AAAA answer


def default_port(transport: str) -> int:
    return 5061 if transport == "tls" else 5060


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def needs_dns(uri: SipUri) -> bool:
    """Whether the next hop of `uri` is a name (else it is an IP address used as it is)."""
    host = (uri.param("maddr") or uri.host).strip("[]")
    return not _is_ip(host)


class Locator:
    """One RFC 3263 resolution of one URI for one transport."""

    def __init__(
        self,
        uri: SipUri,
        transport: str,
        *,
        randint: Callable[[int, int], int] | None = None,
    ) -> None:
        self.transport = transport.lower()
        if self.transport not in NAPTR_SERVICES:
            raise ValueError(f"unknown transport {transport!r}")
        self._randint = randint or random.randint
        self.host = (uri.param("maddr") or uri.host).strip("[]").rstrip(".").lower()
        self._port = uri.port
        self.targets: list[Address] = []
        self._queue: list[Query] = []
        self._ports: dict[str, list[int]] = {}  # host name -> ports its SRV records gave
        self._host_order: list[str] = []
        self._pending_hosts: list[tuple[str, int]] = []
        self._srv_names: list[str] = []
        self._stage = "start"
        if _is_ip(self.host):
            self.targets = [(self.host, self._port or default_port(self.transport))]
            self._stage = "done"
        elif self._port is not None:
            self._pending_hosts = [(self.host, self._port)]
            self._stage = "hosts"
            self._queue = [Query(self.host, "A")]
        else:
            self._stage = "naptr"
            self._queue = [Query(self.host, "NAPTR")]

    @property
    def done(self) -> bool:
        return self._stage == "done"

    def next_query(self) -> Query | None:
        """The DNS question to answer next; None once `targets` is final."""
        return self._queue[0] if self._queue else None

    def answer(self, query: Query, records: Sequence[Record]) -> None:
        """The answer to `query` (empty for no records, NXDOMAIN, or a failed lookup)."""
        if not self._queue or self._queue[0] != query:
            raise ValueError(f"not waiting for {query}")
        self._queue.pop(0)
        if query.rtype == "NAPTR":
            self._on_naptr([r for r in records if isinstance(r, NaptrRecord)])
        elif query.rtype == "SRV":
            self._on_srv(query, [r for r in records if isinstance(r, SrvRecord)])
        else:
            self._on_addresses(query, [r for r in records if isinstance(r, str) and _is_ip(r)])
        if not self._queue and self._stage != "done":
            self._stage = "done"

    # ------------------------------------------------------------------ stages
    def _on_naptr(self, records: list[NaptrRecord]) -> None:
        service = NAPTR_SERVICES[self.transport]
        usable = sorted(
            (
                r
                for r in records
                if r.flags.lower() == "s" and r.service.upper() == service and r.replacement
            ),
            key=lambda r: (r.order, r.preference),
        )
        names = [r.replacement.rstrip(".").lower() for r in usable][:MAX_SRV_QUERIES]
        if not names:
            names = [SRV_PREFIXES[self.transport] + self.host]
        self._stage = "srv"
        self._srv_names = names
        self._queue = [Query(names[0], "SRV")]

    def _on_srv(self, query: Query, records: list[SrvRecord]) -> None:
        hosts = _srv_order(records, self._randint)
        if hosts:
            self._stage = "hosts"
            self._pending_hosts = hosts[:MAX_HOST_QUERIES]
            self._queue = [Query(self._pending_hosts[0][0], "A")]
            return
        remaining = self._srv_names[self._srv_names.index(query.name) + 1 :]
        if remaining:
            self._queue = [Query(remaining[0], "SRV")]
            return
        # No SRV at all (§4.2): the domain itself, on the default port.
        self._stage = "hosts"
        self._pending_hosts = [(self.host, default_port(self.transport))]
        self._queue = [Query(self.host, "A")]

    def _on_addresses(self, query: Query, addresses: list[str]) -> None:
        host, port = self._pending_hosts[0]
        if not addresses and query.rtype == "A":
            self._queue = [Query(host, "AAAA")]  # no IPv4: try IPv6 before moving on
            return
        for address in addresses:
            target = (address, port)
            if target not in self.targets and len(self.targets) < MAX_TARGETS:
                self.targets.append(target)
        self._pending_hosts.pop(0)
        if self._pending_hosts:
            self._queue = [Query(self._pending_hosts[0][0], "A")]


def _srv_order(
    records: list[SrvRecord], randint: Callable[[int, int], int]
) -> list[tuple[str, int]]:
    """(host, port) in the order RFC 2782 gives: priority, then weighted random."""
    usable = [r for r in records if r.target.rstrip(".")]
    if len(usable) != len(records) and not usable:
        return []  # a lone "." target: the service is decidedly not available here
    ordered: list[tuple[str, int]] = []
    for priority in sorted({r.priority for r in usable}):
        # Weight 0 first, as RFC 2782 says, so they get a small chance of going first.
        group = sorted((r for r in usable if r.priority == priority), key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = randint(0, total)
            running = 0
            index = 0
            while index < len(group) - 1:
                running += group[index].weight
                if running >= pick:
                    break
                index += 1
            chosen = group.pop(index)
            ordered.append((chosen.target.rstrip(".").lower(), chosen.port))
    return ordered


class DnsCache:
    """DNS answers kept for their TTL (and empty ones for `negative_ttl`), on the owner's
    clock: `get` returns None once an entry expired."""

    def __init__(self, *, negative_ttl: float = 30.0, max_entries: int = 1024) -> None:
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._entries: dict[Query, tuple[tuple[Record, ...], float]] = {}

    def get(self, query: Query, now: float) -> tuple[Record, ...] | None:
        entry = self._entries.get(query)
        if entry is None:
            return None
        records, expires = entry
        if now >= expires:
            del self._entries[query]
            return None
        return records

    def put(self, query: Query, records: Sequence[Record], ttl: float, now: float) -> None:
        if not records:
            ttl = min(ttl, self.negative_ttl) if ttl > 0 else self.negative_ttl
        if ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            # Drop what expires first: old answers go before fresh ones.
            oldest = min(self._entries, key=lambda q: self._entries[q][1])
            del self._entries[oldest]
        self._entries[query] = (tuple(records), now + ttl)

    def __len__(self) -> int:
        return len(self._entries)
