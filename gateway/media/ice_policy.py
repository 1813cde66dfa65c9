"""Which of the browser's ICE candidates the gateway checks, and how many checks it sends.

A candidate is an address the browser asks the gateway to send STUN to: from the network,
so the attacker's choice. Unbounded, one `call:start` made the gateway send thousands of
STUN requests into ranges the operator never meant it to reach (issue 11). The policy:

- a candidate (in the offer or trickled) is dropped when its address is an mDNS name
  (`.local`: the gateway is not on the visitor's LAN, and aioice would spend a lookup on
  each), not an IP address, not a unicast address, or inside a denied network
  (`ice.denied_candidate_networks`: by default this machine's networks and link-local);
- the gateway's agent starts at most `ice.max_checks_per_call` connectivity checks per
  call; pairs past it fail unchecked.

Connectivity does not depend on the dropped candidates: the browser's own checks reach the
gateway's candidates, and the gateway answers and checks back the address they came from
(a peer-reflexive candidate, RFC 8445 §7.3.1.3). That is also why the gateway ignores
end-of-candidates: with every signalled candidate dropped, aioice would give up before the
browser's first check arrived.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import aioice

logger = logging.getLogger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CANDIDATE = "a=candidate:"
_END_OF_CANDIDATES = "a=end-of-candidates"


@dataclass(frozen=True, slots=True)
class CandidatePolicy:
    """Which signalled candidate addresses may be checked."""

    denied: tuple[IpNetwork, ...] = ()

    def allows(self, address: str) -> bool:
        """Whether the gateway may send STUN to `address` (a candidate's address field)."""
        if address.lower().endswith(".local"):
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # a host name: aioice would not use it anyway
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_multicast or ip.is_unspecified or ip == ipaddress.IPv4Address("255.255.255.255"):
            return False
        return not any(ip in network for network in self.denied)

    def filter_offer(self, sdp: str) -> tuple[str, int]:
        """The offer without the candidates this policy drops, nor end-of-candidates;
        and how many candidates were dropped. Lines it cannot read are kept, for the SDP
        parser to refuse."""
        kept: list[str] = []
        dropped = 0
        for line in sdp.splitlines(keepends=True):
            if line.startswith(_END_OF_CANDIDATES):
                continue
            if line.startswith(_CANDIDATE):
                fields = line.split()
                if len(fields) >= 8 and not self.allows(fields[4]):
                    dropped += 1
                    continue
            kept.append(line)
        return "".join(kept), dropped


class CheckBudget:
    """At most `limit` connectivity checks started by the ICE connections of one call;
    once spent, a pair's check fails at once instead of being sent. Consent freshness
    (RFC 7675, one request every few seconds on the selected pair) is not counted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.started = 0
        self.refused = 0
        self._connections: list[aioice.Connection] = []

    def apply(self, connections: Iterable[aioice.Connection]) -> None:
        """Put each connection (before its checks start) on this budget."""
        for connection in connections:
            if any(connection is known for known in self._connections):
                continue
            self._connections.append(connection)
            self._wrap(connection)

    def _wrap(self, connection: aioice.Connection) -> None:
        check = connection.check_start
        budget = self

        async def check_start(pair: aioice.ice.CandidatePair) -> None:
            if budget.started >= budget.limit:
                if budget.refused == 0:
                    logger.info(
                        "%s: %d connectivity checks started, no more for this call "
                        "(ice.max_checks_per_call)",
                        connection,
                        budget.started,
                    )
                budget.refused += 1
                connection.check_state(pair, aioice.ice.CandidatePair.State.FAILED)
                connection.check_complete(pair)
                return
            budget.started += 1
            await check(pair)

        # aioice starts every check, triggered ones included, through this method (it has no
        # hook for it: the method is replaced on this connection, which mypy flags).
        connection.check_start = check_start  # type: ignore[method-assign]
