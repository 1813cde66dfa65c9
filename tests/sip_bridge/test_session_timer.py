"""Session timers (RFC 4028) in both roles, on a fake clock: two user agents, or one and a
scripted peer on the fake wire."""

from __future__ import annotations

import pytest

from sip_bridge.events import CallAnswered, CallEnded, EndReason, IncomingCall, OfferReceived
from sip_bridge.headers import Headers
from sip_bridge.message import parse_message
from sip_bridge.session_timer import (
    SessionTimer,
    parse_session_expires,
    timer_for_request,
    timer_from_response,
)
from sip_bridge.useragent import UserAgent, UserAgentConfig

from .loop import Wire
from .scripted import ANSWER, OFFER, ScriptedPeer

CALLER = ("127.0.0.1", 5070)
PHONE = ("127.0.0.1", 5080)
PEER = ("127.0.0.1", 5090)


def events(wire: Wire, address, kind):
    return [e for e in wire.events[address] if isinstance(e, kind)]


def sent_at(wire: Wire, address, start: bytes) -> list[float]:
    """When `address` sent datagrams beginning with `start`, on the fake clock."""
    return [
        t
        for (t, _), (src, _, data) in zip(wire.send_times, wire.sent, strict=True)
        if src == address and data.startswith(start)
    ]


def headers(**values: str) -> Headers:
    h = Headers()
    for name, value in values.items():
        h.add(name.replace("_", "-"), value)
    return h


def test_headers_and_negotiation_rules():
    assert parse_session_expires("1800;refresher=UAC") == parse_session_expires(
        " 1800 ; refresher=uac"
    )
    assert timer_from_response(headers()) is None
    # A Session-Expires without Require: timer was added by a proxy: the UAC refreshes.
    assert timer_from_response(headers(Session_Expires="600;refresher=uas")) == SessionTimer(
        600, True
    )
    assert timer_from_response(
        headers(Session_Expires="600;refresher=uas", Require="timer")
    ) == SessionTimer(600, False)
    # As the server: too small gets 422 with our Min-SE; otherwise the refresher it names.
    assert timer_for_request(headers(Session_Expires="60"), local_interval=0, local_min_se=90) == (
        None,
        90,
    )
    assert timer_for_request(
        headers(Session_Expires="300;refresher=uac", Supported="timer"),
        local_interval=0,
        local_min_se=90,
    ) == (SessionTimer(300, we_refresh=False), None)
    # A caller that does not know timers is refreshed by us when we want a timer.
    assert timer_for_request(headers(), local_interval=1800, local_min_se=90) == (
        SessionTimer(1800, we_refresh=True),
        None,
    )
    timer = SessionTimer(90, we_refresh=False)
    assert (timer.refresh_due(0), timer.expiry_due(0)) == (45, 60)  # 90 - min(32, 30)
    assert SessionTimer(1, True).refresh_due(0) == 1  # read as 2 s: never faster
    with pytest.raises(ValueError):
        UserAgentConfig(address=CALLER, min_se=30)


@pytest.fixture
def wire() -> Wire:
    return Wire()


def test_the_answerer_asks_the_caller_to_refresh_and_byes_when_it_stops(wire):
    caller = wire.add(UserAgent(UserAgentConfig(address=CALLER)))
    phone = wire.add(
        UserAgent(
            UserAgentConfig(address=PHONE, accept_incoming=True, session_expires=120, min_se=90)
        )
    )
    call_id = caller.invite("sip:operator@127.0.0.1:5080", wire.now, sdp=OFFER)
    wire.flush()
    invite = next(m for m in wire.messages_from(CALLER) if m.method == "INVITE")
    assert "timer" in invite.headers.tokens("Supported")
    assert "Session-Expires" not in invite.headers  # the caller asks for none itself
    phone.answer(call_id, wire.now, sdp=ANSWER)
    wire.flush()
    ok = next(m for m in wire.messages_from(PHONE) if getattr(m, "status", 0) == 200)
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.tokens("Require") == ["timer"]
    assert caller.session_timer(call_id) == SessionTimer(120, we_refresh=True)
    answered_at = wire.now
    wire.advance(300)
    refreshes = [m for m in wire.messages_from(CALLER) if getattr(m, "method", "") == "UPDATE"]
    assert len(refreshes) == 5  # every 60 s: half the interval
    assert refreshes[0].headers.get("Session-Expires") == "120;refresher=uac"
    assert not refreshes[0].body  # the peer allows UPDATE: no offer needed
    assert sent_at(wire, CALLER, b"UPDATE") == [answered_at + 60 * n for n in range(1, 6)]
    assert not events(wire, PHONE, CallEnded)
    # The caller goes quiet: the phone ends the call min(32, 120/3) s before it expires.
    wire.drop = lambda src, dst, data: data.startswith(b"UPDATE")
    last = wire.now - (wire.now - answered_at) % 60
    wire.advance(120)
    (ended,) = events(wire, PHONE, CallEnded)
    assert ended.reason == EndReason.SESSION_EXPIRED
    bye = next(m for m in wire.messages_from(PHONE) if getattr(m, "method", "") == "BYE")
    assert "Session expired" in bye.headers.get("Reason")
    bye_time = sent_at(wire, PHONE, b"BYE")[0]
    assert bye_time == pytest.approx(last + 120 - 32, abs=0.06)
    assert events(wire, CALLER, CallEnded)[0].reason == EndReason.REMOTE_HANGUP


def test_a_peer_without_update_is_refreshed_by_reinvite_with_the_same_sdp(wire):
    caller = wire.add(UserAgent(UserAgentConfig(address=CALLER)))
    peer = ScriptedPeer(wire, caller, PEER)
    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    invite = peer.last("INVITE")
    peer.respond(
        invite,
        200,
        body=ANSWER,
        headers=(("Session-Expires", "90;refresher=uac"), ("Require", "timer")),
    )
    wire.advance(45)
    reinvite = peer.last("INVITE")
    assert reinvite is not invite and reinvite.to.tag == "far1"
    assert reinvite.body == OFFER  # the same session, version unchanged
    assert reinvite.cseq.seq == invite.cseq.seq + 1
    peer.respond(reinvite, 200, body=ANSWER, headers=(("Session-Expires", "90;refresher=uac"),))
    acks = peer.requests("ACK")
    assert acks[-1].cseq.seq == reinvite.cseq.seq
    wire.advance(45)
    assert len(peer.requests("INVITE")) == 3  # the next refresh, 45 s later


def test_422_is_retried_with_the_interval_asked_then_a_short_interval_is_honoured(wire):
    caller = wire.add(UserAgent(UserAgentConfig(address=CALLER, session_expires=90)))
    peer = ScriptedPeer(wire, caller, PEER)
    call_id = caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    first = peer.last("INVITE")
    assert (first.headers.get("Session-Expires"), first.headers.get("Min-SE")) == ("90", "90")
    peer.respond(first, 422, headers=(("Min-SE", "300"),))
    retry = peer.last("INVITE")
    assert peer.methods() == ["INVITE", "ACK", "INVITE"]
    assert (retry.headers.get("Session-Expires"), retry.headers.get("Min-SE")) == ("300", "300")
    assert retry.call_id == first.call_id and retry.cseq.seq == first.cseq.seq + 1
    assert retry.from_.tag == first.from_.tag
    # The answer sets 4 s (below any Min-SE, as some PBXs do): refreshed every 2 s.
    peer.respond(
        retry,
        200,
        body=ANSWER,
        headers=(
            ("Session-Expires", "4;refresher=uac"),
            ("Require", "timer"),
            ("Allow", "INVITE, ACK, BYE, UPDATE"),
        ),
    )
    assert events(wire, CALLER, CallAnswered)
    start = wire.now
    wire.advance(2.0)
    (update,) = peer.requests("UPDATE")
    assert sent_at(wire, CALLER, b"UPDATE") == [pytest.approx(start + 2.0)]
    peer.respond(update, 200, headers=(("Session-Expires", "4;refresher=uac"),))
    wire.advance(2.0)
    assert len(peer.requests("UPDATE")) == 2
    assert caller.session_timer(call_id) == SessionTimer(4, we_refresh=True)


def test_the_refresher_far_end_that_goes_quiet_gets_a_bye(wire):
    caller = wire.add(UserAgent(UserAgentConfig(address=CALLER)))
    peer = ScriptedPeer(wire, caller, PEER)
    call_id = caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    invite = peer.last("INVITE")
    peer.respond(
        invite,
        200,
        body=ANSWER,
        headers=(("Session-Expires", "90;refresher=uas"), ("Require", "timer")),
    )
    wire.advance(40)
    # Its refresh at 40 s resets the clock; our 200 says who refreshes, in its terms.
    update = peer.send_in_dialog(
        invite, "UPDATE", headers=(("Session-Expires", "90;refresher=uac"), ("Supported", "timer"))
    )
    reply = peer.responses("UPDATE")[-1]
    assert reply.status == 200 and reply.headers.get("Session-Expires") == "90;refresher=uac"
    assert reply.headers.tokens("Require") == ["timer"]
    assert update.cseq.seq == 1
    refreshed = wire.now
    wire.advance(59)
    assert not peer.requests("BYE")
    wire.advance(1)
    (bye,) = peer.requests("BYE")
    assert sent_at(wire, CALLER, b"BYE") == [pytest.approx(refreshed + 60)]
    peer.respond(bye, 200, contact=False)
    (ended,) = events(wire, CALLER, CallEnded)
    assert ended.reason == EndReason.SESSION_EXPIRED
    assert caller.call_state(call_id) is None


def test_a_reinvite_below_our_min_se_gets_422_and_changes_nothing(wire):
    caller = wire.add(UserAgent(UserAgentConfig(address=CALLER, min_se=120)))
    peer = ScriptedPeer(wire, caller, PEER)
    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    invite = peer.last("INVITE")
    peer.respond(invite, 200, body=ANSWER)
    peer.send_in_dialog(invite, "INVITE", headers=(("Session-Expires", "100"),), body=ANSWER)
    (reply,) = [r for r in peer.responses("INVITE") if r.cseq.seq == 1]
    assert (reply.status, reply.headers.get("Min-SE")) == (422, "120")
    assert not events(wire, CALLER, OfferReceived)


def test_a_refresh_crossing_the_peers_reinvite_is_retried_after_491(wire):
    caller = wire.add(UserAgent(UserAgentConfig(address=CALLER)))
    peer = ScriptedPeer(wire, caller, PEER)
    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    invite = peer.last("INVITE")
    peer.respond(
        invite,
        200,
        body=ANSWER,
        headers=(
            ("Session-Expires", "100;refresher=uac"),
            ("Require", "timer"),
            ("Allow", "UPDATE"),
        ),
    )
    wire.advance(50)
    update = peer.last("UPDATE")
    peer.respond(update, 491, contact=False)
    wire.advance(2.0)
    assert len(peer.requests("UPDATE")) == 1  # not before 2.1 s
    wire.advance(2.0)
    assert len({m.cseq.seq for m in peer.requests("UPDATE")}) == 2


def test_incoming_call_with_a_short_session_expires_gets_422():
    wire = Wire()
    caller = wire.add(UserAgent(UserAgentConfig(address=CALLER)))
    phone = wire.add(UserAgent(UserAgentConfig(address=PHONE, accept_incoming=True)))
    caller.invite(
        "sip:operator@127.0.0.1:5080",
        wire.now,
        sdp=OFFER,
        headers=[("X-Test", "1")],
    )
    # Our own INVITE carries no Session-Expires (session_expires=0): nothing to refuse.
    wire.flush()
    assert events(wire, PHONE, IncomingCall)
    raw = (
        b"INVITE sip:operator@127.0.0.1:5080 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKse1\r\n"
        b"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:operator@127.0.0.1>\r\nCall-ID: se-1\r\n"
        b"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nSession-Expires: 30\r\nContent-Length: 0\r\n\r\n"
    )
    wire.inject(phone, raw, PEER)
    reply = parse_message(wire.captured[PEER][-1])
    assert (reply.status, reply.headers.get("Min-SE")) == (422, "90")
    assert phone.active_calls == 1
