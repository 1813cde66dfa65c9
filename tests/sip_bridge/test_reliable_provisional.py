"""Reliable provisional responses (RFC 3262) as the caller, against a scripted peer on the
fake wire: PRACK per reliable 1xx, in order, and the answer they carry."""

from __future__ import annotations

import pytest

from sip_bridge.events import CallAnswered, CallEnded, EarlyMedia, EndReason
from sip_bridge.useragent import UserAgent, UserAgentConfig

from .loop import Wire
from .scripted import ANSWER, OFFER, ScriptedPeer

CALLER = ("127.0.0.1", 5070)
PEER = ("127.0.0.1", 5090)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def caller(wire: Wire) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=CALLER)))


@pytest.fixture
def peer(wire: Wire, caller: UserAgent) -> ScriptedPeer:
    return ScriptedPeer(wire, caller, PEER)


def events(wire: Wire, kind):
    return [e for e in wire.events[CALLER] if isinstance(e, kind)]


def reliable(rseq: int) -> tuple[tuple[str, str], ...]:
    return (("Require", "100rel"), ("RSeq", str(rseq)))


def test_reliable_183_and_180_are_pracked_in_order_and_the_early_answer_stands(wire, caller, peer):
    call_id = caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    invite = peer.last("INVITE")
    assert "100rel" in invite.headers.tokens("Supported")
    peer.respond(invite, 183, body=ANSWER, headers=reliable(1))
    (prack,) = peer.requests("PRACK")
    assert prack.headers.get("RAck") == f"1 {invite.cseq.seq} INVITE"
    assert prack.to.tag == "far1" and prack.cseq.seq == invite.cseq.seq + 1
    assert str(prack.uri) == "sip:op@127.0.0.1:5090"  # the early dialog's remote target
    assert [e.sdp for e in events(wire, EarlyMedia)] == [ANSWER]
    peer.respond(prack, 200, contact=False)
    # A retransmission of the same 183 (its PRACK was lost, say) gets no second PRACK.
    peer.respond(invite, 183, body=ANSWER, headers=reliable(1))
    assert len(peer.requests("PRACK")) == 1 and len(events(wire, EarlyMedia)) == 1
    # RSeq 3 before 2: out of order, dropped (§4); then 2 is PRACKed.
    peer.respond(invite, 180, headers=reliable(3))
    assert len(peer.requests("PRACK")) == 1
    peer.respond(invite, 180, headers=reliable(2))
    second = peer.requests("PRACK")[-1]
    assert second.headers.get("RAck") == f"2 {invite.cseq.seq} INVITE"
    assert second.cseq.seq == prack.cseq.seq + 1
    # The 200 carries no SDP: the answer came in the reliable 183.
    peer.respond(invite, 200)
    (answered,) = events(wire, CallAnswered)
    assert answered.sdp == ANSWER
    caller.hangup(call_id, wire.now)
    wire.flush()
    bye = peer.last("BYE")
    assert bye.cseq.seq == second.cseq.seq + 1  # PRACKs used the dialog's CSeq space
    peer.respond(bye, 200, contact=False)
    assert events(wire, CallEnded)[0].reason == EndReason.LOCAL_HANGUP


def test_unreliable_early_answer_then_a_2xx_without_sdp_still_ends(wire, caller, peer):
    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    invite = peer.last("INVITE")
    peer.respond(invite, 200)
    assert not peer.requests("PRACK")
    assert peer.last("BYE")  # no answer anywhere: the call cannot carry media
    assert not events(wire, CallAnswered)


def test_a_421_says_what_the_peer_requires(wire, caller, peer):
    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    peer.respond(peer.last("INVITE"), 421, headers=(("Require", "precondition"),))
    (ended,) = events(wire, CallEnded)
    assert (ended.reason, ended.status) == (EndReason.FAILED, 421)
    assert ended.detail == "421 Extension Required (requires precondition)"
