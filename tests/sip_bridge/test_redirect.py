"""Redirects (RFC 3261 §8.1.3.4) on the fake wire: Contacts in q order, only where the
call's policy allows, a bounded number of hops, and a clear end otherwise."""

from __future__ import annotations

import pytest

from sip_bridge.events import CallAnswered, CallEnded, CallRedirected, EndReason
from sip_bridge.message import Response
from sip_bridge.redirect import redirect_targets
from sip_bridge.useragent import UserAgent, UserAgentConfig

from .loop import Wire
from .scripted import ANSWER, OFFER, ScriptedPeer

CALLER = ("127.0.0.1", 5070)
FIRST = ("127.0.0.1", 5090)
SECOND = ("127.0.0.1", 5091)
THIRD = ("127.0.0.1", 5092)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def caller(wire: Wire) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=CALLER)))


def events(wire: Wire, kind):
    return [e for e in wire.events[CALLER] if isinstance(e, kind)]


def allow_ports(*ports: int):
    return lambda uri: uri.port in ports


def test_contacts_are_ordered_by_q_and_stripped_of_headers():
    response = Response(302, "Moved")
    response.headers.add(
        "Contact",
        "<sip:a@h1>;q=0.5, <sip:b@h2?Subject=x>;q=1, <tel:+4412>, <sip:c@h3>, <sip:d@h4>;q=bad",
    )
    assert [str(u) for u in redirect_targets(response)] == [
        "sip:b@h2",
        "sip:c@h3",
        "sip:a@h1",
        "sip:d@h4",
    ]


def test_302_is_followed_in_q_order_and_a_failed_target_gives_way_to_the_next(wire, caller):
    first, second, third = (ScriptedPeer(wire, caller, a) for a in (FIRST, SECOND, THIRD))
    caller.invite(
        "sip:op@127.0.0.1:5090",
        wire.now,
        sdp=OFFER,
        redirect_policy=allow_ports(5091, 5092),
        credentials=("alice", "pw"),
    )
    wire.flush()
    original = first.last("INVITE")
    first.respond(
        original,
        302,
        headers=(("Contact", "<sip:b@127.0.0.1:5091>;q=0.4, <sip:c@127.0.0.1:5092>;q=0.9"),),
        contact=False,
    )
    assert first.methods() == ["INVITE", "ACK"]
    to_third = third.last("INVITE")
    assert str(to_third.uri) == "sip:c@127.0.0.1:5092"
    assert to_third.call_id == original.call_id and to_third.cseq.seq == original.cseq.seq + 1
    assert to_third.headers.get("To") == original.headers.get("To")
    assert [e.target for e in events(wire, CallRedirected)] == ["sip:c@127.0.0.1:5092"]
    third.respond(to_third, 486)
    to_second = second.last("INVITE")
    assert to_second.cseq.seq == to_third.cseq.seq + 1
    second.respond(to_second, 200, body=ANSWER)
    assert events(wire, CallAnswered)
    assert not events(wire, CallEnded)


@pytest.mark.parametrize(
    ("policy", "detail"),
    [
        (None, "302 Moved Temporarily: redirects are not followed"),
        (allow_ports(5099), "302 Moved Temporarily: no target we may call"),
    ],
)
def test_a_redirect_we_may_not_follow_ends_the_call_saying_so(wire, caller, policy, detail):
    first = ScriptedPeer(wire, caller, FIRST)
    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER, redirect_policy=policy)
    wire.flush()
    first.respond(
        first.last("INVITE"), 302, headers=(("Contact", "<sip:b@127.0.0.1:5091>"),), contact=False
    )
    (ended,) = events(wire, CallEnded)
    assert (ended.reason, ended.status, ended.detail) == (EndReason.REDIRECTED, 302, detail)
    assert SECOND not in wire.captured
    # Without a policy the owner decides (the gateway's ringing core): it gets the Contacts.
    assert ended.targets == (("sip:b@127.0.0.1:5091",) if policy is None else ())


def test_redirect_loops_stop_at_the_hop_limit(wire, caller):
    peers = {a: ScriptedPeer(wire, caller, a) for a in (FIRST, SECOND, THIRD)}
    caller.invite(
        "sip:op@127.0.0.1:5090",
        wire.now,
        sdp=OFFER,
        redirect_policy=lambda uri: True,
        max_redirects=2,
    )
    wire.flush()
    hops = [(FIRST, "sip:b@127.0.0.1:5091"), (SECOND, "sip:c@127.0.0.1:5092")]
    for address, next_target in hops:
        peers[address].respond(
            peers[address].last("INVITE"),
            302,
            headers=(("Contact", f"<{next_target}>, <sip:op@127.0.0.1:5090>"),),
            contact=False,
        )
    # The third 302 is one too many; the way back to the first target was never taken.
    peers[THIRD].respond(
        peers[THIRD].last("INVITE"),
        302,
        headers=(("Contact", "<sip:d@127.0.0.1:5093>"),),
        contact=False,
    )
    (ended,) = events(wire, CallEnded)
    assert ended.reason == EndReason.REDIRECTED and "more than 2 redirects" in ended.detail
    assert len(peers[FIRST].requests("INVITE")) == 1
