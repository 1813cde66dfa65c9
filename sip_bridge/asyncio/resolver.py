"""DNS for RFC 3263: the queries a `sip_bridge.locate.Locator` asks, sent to a real DNS
server with dnspython's asyncio resolver, and kept in a `DnsCache` for their TTL.

The user agent reports a name it must route to as `LocateRequest`; the endpoint asks
`DnsResolver.locate(uri, transport)` and hands the addresses back in RFC 3263 order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from sip_bridge.locate import DnsCache, Locator, NaptrRecord, Query, Record, SrvRecord
from sip_bridge.uri import parse_sip_uri

logger = logging.getLogger(__name__)

Address = tuple[str, int]


class DnsResolver:
    """Resolves SIP URIs to addresses. `nameservers` ((host, port) pairs, all on one port)
    replace the system's resolv.conf; a test points it at its own DNS server."""

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        *,
        timeout: float = 2.0,
        cache: DnsCache | None = None,
    ) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        if nameservers:
            self._resolver.nameservers = [host for host, _ in nameservers]
            self._resolver.port = nameservers[0][1]
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self.cache = cache or DnsCache()
        self.queries = 0  # questions sent to the DNS server (not answered from the cache)

    async def locate(self, uri: str, transport: str) -> list[Address]:
        """The addresses to try for `uri`'s next hop, in order; [] when it does not resolve."""
        locator = Locator(parse_sip_uri(uri), transport)
        while (query := locator.next_query()) is not None:
            locator.answer(query, await self.query(query))
        return locator.targets

    async def query(self, query: Query) -> tuple[Record, ...]:
        loop = asyncio.get_running_loop()
        cached = self.cache.get(query, loop.time())
        if cached is not None:
            return cached
        self.queries += 1
        ttl = 0.0
        try:
            answer = await self._resolver.resolve(
                query.name, query.rtype, raise_on_no_answer=False, search=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers) as exc:
            logger.debug("DNS %s %s: %s", query.rtype, query.name, exc)
            records: tuple[Record, ...] = ()
        except dns.exception.DNSException as exc:
            # A timeout: not cached, the next call asks again.
            logger.info("DNS %s %s failed: %s", query.rtype, query.name, exc)
            return ()
        else:
            rrset = answer.rrset
            records = tuple(_records(query, rrset)) if rrset is not None else ()
            ttl = float(rrset.ttl) if rrset is not None else 0.0
        self.cache.put(query, records, ttl, loop.time())
        return records


def _records(query: Query, rrset) -> list[Record]:
    out: list[Record] = []
    for rdata in rrset:
        if query.rtype == "NAPTR":
            out.append(
                NaptrRecord(
                    rdata.order,
                    rdata.preference,
                    rdata.flags.decode("ascii", "replace"),
                    rdata.service.decode("ascii", "replace"),
                    _host(rdata.replacement),
                )
            )
        elif query.rtype == "SRV":
            out.append(
                SrvRecord(
                    rdata.priority,
                    rdata.weight,
                    rdata.port,
                    _host(rdata.target),
                )
            )
        else:
            out.append(rdata.address)
    return out


def _host(name: dns.name.Name) -> str:
    """A name as text without the final dot; the root (".", "no service") as ""."""
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True)
