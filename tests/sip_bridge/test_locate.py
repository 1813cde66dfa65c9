"""RFC 3263 server location (pure: a Locator fed DNS answers), the TTL cache, and the
user agent failing over between the addresses it was given, on the fake clock."""

from __future__ import annotations

import pytest

from sip_bridge.events import CallAnswered, CallEnded, EndReason, LocateRequest
from sip_bridge.locate import DnsCache, Locator, NaptrRecord, Query, SrvRecord
from sip_bridge.uri import parse_sip_uri
from sip_bridge.useragent import UserAgent, UserAgentConfig

from .loop import Wire
from .scripted import ANSWER, OFFER, ScriptedPeer


def resolve(uri: str, dns: dict, transport: str = "udp", *, randint=None) -> tuple[list, list]:
    """Run a Locator against `dns` ({(name, type): records}); (targets, questions asked)."""
    locator = Locator(parse_sip_uri(uri), transport, randint=randint or (lambda low, high: low))
    asked = []
    while (query := locator.next_query()) is not None:
        asked.append((query.name, query.rtype))
        locator.answer(query, dns.get((query.name, query.rtype), []))
    assert locator.done
    return locator.targets, asked


DNS = {
    ("example.test", "NAPTR"): [
        NaptrRecord(20, 10, "s", "SIP+D2T", "_sip._tcp.example.test"),
        NaptrRecord(10, 10, "s", "SIP+D2U", "_sip._udp.example.test"),
        NaptrRecord(5, 10, "u", "SIP+D2U", "!^.*$!sip:x@y!"),  # not an "s" record
    ],
    ("_sip._udp.example.test", "SRV"): [
        SrvRecord(20, 0, 5062, "backup.example.test."),
        SrvRecord(10, 1, 5060, "a.example.test."),
        SrvRecord(10, 3, 5061, "b.example.test."),
    ],
    ("_sip._tcp.example.test", "SRV"): [SrvRecord(10, 0, 5070, "tcp.example.test")],
    ("a.example.test", "A"): ["192.0.2.1"],
    ("b.example.test", "A"): ["192.0.2.2", "192.0.2.3"],
    ("backup.example.test", "AAAA"): ["2001:db8::9"],
    ("tcp.example.test", "A"): ["192.0.2.7"],
    ("plain.test", "A"): ["192.0.2.50"],
}


def test_naptr_then_srv_by_priority_and_weight_then_addresses():
    # randint returning its low bound picks the first candidate by running weight: the
    # weight-0 entries first, then the lighter.
    targets, asked = resolve("sip:op@example.test", DNS)
    assert asked[:2] == [("example.test", "NAPTR"), ("_sip._udp.example.test", "SRV")]
    assert targets == [
        ("192.0.2.1", 5060),
        ("192.0.2.2", 5061),
        ("192.0.2.3", 5061),
        ("2001:db8::9", 5062),
    ]
    # A draw past the first weight goes to the heavier record first.
    heavy_first, _ = resolve("sip:op@example.test", DNS, randint=lambda low, high: high)
    assert heavy_first[0] == ("192.0.2.2", 5061)
    tcp, _ = resolve("sip:op@example.test", DNS, "tcp")
    assert tcp == [("192.0.2.7", 5070)]


def test_without_naptr_srv_then_a_with_the_default_port():
    dns = {k: v for k, v in DNS.items() if k[1] != "NAPTR"}
    targets, asked = resolve("sip:op@example.test", dns)
    assert asked[1] == ("_sip._udp.example.test", "SRV") and targets[0] == ("192.0.2.1", 5060)
    targets, asked = resolve("sip:op@plain.test", DNS, "tls")
    assert asked == [
        ("plain.test", "NAPTR"),
        ("_sips._tcp.plain.test", "SRV"),
        ("plain.test", "A"),
    ]
    assert targets == [("192.0.2.50", 5061)]


def test_literal_addresses_and_explicit_ports_skip_srv():
    assert resolve("sip:op@192.0.2.9", DNS) == ([("192.0.2.9", 5060)], [])
    assert resolve("sip:op@[2001:db8::1]:5070", DNS) == ([("2001:db8::1", 5070)], [])
    assert resolve("sip:op@plain.test:5099", DNS) == (
        [("192.0.2.50", 5099)],
        [("plain.test", "A")],
    )
    assert resolve("sip:op@nowhere.test", DNS)[0] == []


def test_the_cache_keeps_answers_for_their_ttl_and_failures_briefly():
    cache = DnsCache(negative_ttl=5)
    query = Query("a.example.test", "A")
    cache.put(query, ["192.0.2.1"], 60, now=100)
    assert cache.get(query, 159.9) == ("192.0.2.1",)
    assert cache.get(query, 160) is None
    missing = Query("nowhere.test", "A")
    cache.put(missing, [], 3600, now=100)
    assert cache.get(missing, 104) == ()
    assert cache.get(missing, 105) is None
    cache.put(query, ["192.0.2.1"], 0, now=100)  # TTL 0: not kept
    assert cache.get(query, 100) is None


CALLER = ("127.0.0.1", 5070)
FIRST = ("127.0.0.1", 5090)
SECOND = ("127.0.0.1", 5091)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def caller(wire: Wire) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=CALLER, resolve_names=True)))


def events(wire: Wire, kind):
    return [e for e in wire.events[CALLER] if isinstance(e, kind)]


def test_503_and_timeouts_fail_over_to_the_next_address(wire, caller):
    first, second = ScriptedPeer(wire, caller, FIRST), ScriptedPeer(wire, caller, SECOND)
    call_id = caller.invite("sip:op@pbx.example.test", wire.now, sdp=OFFER)
    wire.flush()
    (locate,) = events(wire, LocateRequest)
    assert (locate.key, locate.uri, locate.transport) == (call_id, "sip:op@pbx.example.test", "udp")
    assert not wire.sent  # nothing goes out before we know where
    caller.targets_resolved(call_id, [FIRST, SECOND], wire.now)
    wire.flush()
    invite = first.last("INVITE")
    first.respond(invite, 503)
    again = second.last("INVITE")
    assert again.cseq.seq == invite.cseq.seq and again.top_via.branch != invite.top_via.branch
    second.respond(again, 200, body=ANSWER)
    assert events(wire, CallAnswered)


def test_a_silent_first_address_fails_over_at_timer_b(wire, caller):
    second = ScriptedPeer(wire, caller, SECOND)
    call_id = caller.invite("sip:op@pbx.example.test", wire.now, sdp=OFFER)
    caller.targets_resolved(call_id, [FIRST, SECOND], wire.now)
    wire.flush()
    wire.advance(31.9)
    assert SECOND not in wire.captured
    wire.advance(0.2)
    second.respond(second.last("INVITE"), 486)
    (ended,) = events(wire, CallEnded)
    assert (ended.reason, ended.status) == (EndReason.BUSY, 486)


def test_a_name_that_does_not_resolve_and_a_hangup_while_locating(wire, caller):
    first = caller.invite("sip:op@nowhere.test", wire.now, sdp=OFFER)
    caller.targets_resolved(first, [], wire.now)
    second = caller.invite("sip:op@pbx.example.test", wire.now, sdp=OFFER)
    caller.hangup(second, wire.now)
    caller.targets_resolved(second, [FIRST], wire.now)  # too late: ignored
    wire.flush()
    unresolved, cancelled = events(wire, CallEnded)
    assert (unresolved.reason, unresolved.detail) == (
        EndReason.UNREACHABLE,
        "cannot resolve nowhere.test",
    )
    assert cancelled.reason == EndReason.CANCELLED
    assert not wire.sent
