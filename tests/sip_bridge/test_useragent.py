"""The sans-I/O user agent against another user agent or a scripted peer, on a fake clock."""

from __future__ import annotations

import pytest

from sip_bridge.events import (
    AckReceived,
    CallAnswered,
    CallEnded,
    CallProgress,
    CallRinging,
    EarlyMedia,
    EndReason,
    IncomingCall,
    OfferReceived,
    OptionsResult,
)
from sip_bridge.message import Request, Response, new_response, parse_message
from sip_bridge.useragent import (
    CallError,
    ConfirmedDialog,
    RingingInvite,
    UserAgent,
    UserAgentConfig,
)

from .loop import Wire

CALLER = ("127.0.0.1", 5070)
PHONE = ("127.0.0.1", 5080)
SCRIPTED = ("127.0.0.1", 5090)
OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 20000 RTP/AVP 0\r\n"
)
ANSWER = OFFER.replace(b"20000", b"30000")


def events_of(wire: Wire, address, kind):
    return [e for e in wire.events[address] if isinstance(e, kind)]


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def caller(wire: Wire) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=CALLER)))


@pytest.fixture
def phone(wire: Wire) -> UserAgent:
    return wire.add(
        UserAgent(UserAgentConfig(address=PHONE, user="operator", accept_incoming=True))
    )


def call_phone(wire: Wire, caller: UserAgent) -> str:
    call_id = caller.invite("sip:operator@127.0.0.1:5080", wire.now, sdp=OFFER)
    wire.flush()
    return call_id


def test_call_rings_answers_and_ends_cleanly(wire, caller, phone):
    call_id = call_phone(wire, caller)
    (incoming,) = events_of(wire, PHONE, IncomingCall)
    assert incoming.call_id == call_id and incoming.sdp == OFFER
    phone.ring(call_id, wire.now)
    wire.flush()
    phone.answer(call_id, wire.now, sdp=ANSWER)
    wire.flush()
    assert [type(e) for e in wire.events[CALLER]] == [
        CallProgress,
        CallProgress,
        CallRinging,
        CallAnswered,
    ]
    assert events_of(wire, CALLER, CallAnswered)[0].sdp == ANSWER
    assert events_of(wire, PHONE, AckReceived)
    caller.hangup(call_id, wire.now)
    wire.flush()
    assert events_of(wire, CALLER, CallEnded)[0].reason == EndReason.LOCAL_HANGUP
    assert events_of(wire, PHONE, CallEnded)[0].reason == EndReason.REMOTE_HANGUP
    assert wire.summary(CALLER) == ["INVITE", "ACK", "BYE"]
    assert wire.summary(PHONE) == ["100 INVITE", "180 INVITE", "200 INVITE", "200 BYE"]
    wire.advance(40)
    assert (caller.active_calls, caller.transaction_count) == (0, 0)
    assert (phone.active_calls, phone.transaction_count) == (0, 0)


def test_timer_a_doubles_and_timer_b_gives_up_after_64_t1(wire, caller):
    caller.invite("sip:nobody@127.0.0.1:5999", wire.now, sdp=OFFER)
    start = wire.now
    wire.flush()
    wire.advance(40)
    times = [t for t in _send_times(wire, CALLER)]
    assert [round(t - start, 2) for t in times] == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    (ended,) = events_of(wire, CALLER, CallEnded)
    assert ended.reason == EndReason.UNREACHABLE
    assert caller.transaction_count == 0 and caller.active_calls == 0


def _send_times(wire: Wire, address):
    return [t for t, src in wire.send_times if src == address]


def test_bye_retransmits_with_timer_e_capped_at_t2_and_ends_at_timer_f(wire, caller, phone):
    call_id = call_phone(wire, caller)
    phone.answer(call_id, wire.now, sdp=ANSWER)
    wire.flush()
    wire.drop = lambda src, dst, data: data.startswith(b"BYE")
    start = wire.now
    caller.hangup(call_id, wire.now)
    wire.flush()
    wire.advance(40)
    byes = [round(t - start, 2) for t, src in wire.send_times if src == CALLER][2:]
    # T1 doubling up to T2 = 4 s: 0, .5, 1.5, 3.5, 7.5, then every 4 s until 64*T1.
    assert byes == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    (ended,) = events_of(wire, CALLER, CallEnded)
    assert ended.reason == EndReason.LOCAL_HANGUP
    assert caller.transaction_count == 0


def scripted_invite(wire: Wire, caller: UserAgent, *, target="sip:op@127.0.0.1:5090") -> Request:
    caller.invite(target, wire.now, sdp=OFFER)
    wire.flush()
    return parse_message(wire.captured[SCRIPTED][-1])


def respond(wire, caller, request, status, *, tag="far1", body=b"", headers=()):
    response = new_response(request, status, to_tag=tag)
    response.headers.add("Contact", "<sip:op@127.0.0.1:5090>")
    for name, value in headers:
        response.headers.add(name, value)
    if body:
        response.headers.add("Content-Type", "application/sdp")
        response.body = body
    wire.inject(caller, response.serialize(), SCRIPTED)
    return response


def captured_methods(wire):
    return [parse_message(d).method for d in wire.captured.get(SCRIPTED, [])]


def test_busy_is_acked_and_ack_repeated_for_retransmitted_final(wire, caller):
    invite = scripted_invite(wire, caller)
    respond(wire, caller, invite, 180)
    respond(wire, caller, invite, 486)
    respond(wire, caller, invite, 486)  # retransmission absorbed, ACK sent again
    assert captured_methods(wire) == ["INVITE", "ACK", "ACK"]
    ack = parse_message(wire.captured[SCRIPTED][1])
    assert ack.top_via.branch == invite.top_via.branch  # §17.1.1.3: same transaction
    assert ack.to.tag == "far1" and ack.cseq.seq == invite.cseq.seq
    (ended,) = events_of(wire, CALLER, CallEnded)
    assert (ended.reason, ended.status) == (EndReason.BUSY, 486)
    wire.advance(31)
    assert caller.transaction_count == 1  # timer D (32 s) still absorbing
    wire.advance(2)
    assert caller.transaction_count == 0


def test_cancel_while_ringing_then_487(wire, caller):
    invite = scripted_invite(wire, caller)
    respond(wire, caller, invite, 180)
    caller.hangup(invite.call_id, wire.now)
    wire.flush()
    cancel = parse_message(wire.captured[SCRIPTED][-1])
    assert cancel.method == "CANCEL"
    assert cancel.top_via.branch == invite.top_via.branch
    assert (cancel.cseq.seq, str(cancel.uri)) == (invite.cseq.seq, str(invite.uri))
    wire.inject(caller, new_response(cancel, 200).serialize(), SCRIPTED)
    respond(wire, caller, invite, 487)
    assert captured_methods(wire) == ["INVITE", "CANCEL", "ACK"]
    (ended,) = events_of(wire, CALLER, CallEnded)
    assert ended.reason == EndReason.CANCELLED


def test_cancel_waits_for_a_provisional_response(wire, caller):
    invite = scripted_invite(wire, caller)
    caller.hangup(invite.call_id, wire.now)
    wire.flush()
    assert captured_methods(wire) == ["INVITE"]  # §9.1: no CANCEL before a 1xx
    respond(wire, caller, invite, 100, tag=None)
    assert captured_methods(wire) == ["INVITE", "CANCEL"]


def test_200_crossing_cancel_is_acked_then_byed(wire, caller):
    invite = scripted_invite(wire, caller)
    respond(wire, caller, invite, 180)
    caller.hangup(invite.call_id, wire.now)
    wire.flush()
    respond(wire, caller, invite, 200, body=ANSWER)
    assert captured_methods(wire) == ["INVITE", "CANCEL", "ACK", "BYE"]
    bye = parse_message(wire.captured[SCRIPTED][-1])
    assert bye.to.tag == "far1" and bye.cseq.seq == invite.cseq.seq + 1
    assert not events_of(wire, CALLER, CallAnswered)
    wire.inject(caller, new_response(bye, 200).serialize(), SCRIPTED)
    (ended,) = events_of(wire, CALLER, CallEnded)
    assert ended.reason == EndReason.CANCELLED


def test_retransmitted_2xx_gets_the_same_ack_again(wire, caller):
    invite = scripted_invite(wire, caller)
    ok = respond(wire, caller, invite, 200, body=ANSWER)
    wire.inject(caller, ok.serialize(), SCRIPTED)
    wire.advance(40)  # past timer M: the UA still answers a late copy from its dialog
    wire.inject(caller, ok.serialize(), SCRIPTED)
    acks = [d for d in wire.captured[SCRIPTED] if d.startswith(b"ACK")]
    assert len(acks) == 3 and acks[0] == acks[1] == acks[2]
    assert len(events_of(wire, CALLER, CallAnswered)) == 1


def test_forked_second_2xx_is_acked_and_hung_up(wire, caller):
    invite = scripted_invite(wire, caller)
    respond(wire, caller, invite, 200, tag="fork1", body=ANSWER)
    respond(wire, caller, invite, 200, tag="fork2", body=ANSWER)
    sent = [parse_message(d) for d in wire.captured[SCRIPTED]]
    assert [(m.method, m.to.tag) for m in sent[1:]] == [
        ("ACK", "fork1"),
        ("ACK", "fork2"),
        ("BYE", "fork2"),
    ]
    assert len(events_of(wire, CALLER, CallAnswered)) == 1


def test_route_set_from_record_route_and_remote_target_from_contact(wire, caller):
    invite = scripted_invite(wire, caller)
    response = new_response(invite, 200, to_tag="x")
    response.headers.add("Record-Route", "<sip:p2.example.com;lr>, <sip:127.0.0.1:5090;lr>")
    response.headers.add("Contact", "<sip:op@192.0.2.7:5062;transport=udp>")
    response.headers.add("Content-Type", "application/sdp")
    response.body = ANSWER
    wire.inject(caller, response.serialize(), SCRIPTED)
    caller.hangup(invite.call_id, wire.now)
    wire.flush()
    bye = parse_message(wire.captured[SCRIPTED][-1])
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:op@192.0.2.7:5062;transport=udp"
    assert bye.headers.get_all("Route") == ["<sip:127.0.0.1:5090;lr>", "<sip:p2.example.com;lr>"]


def test_far_end_bye_ends_the_call(wire, caller, phone):
    call_id = call_phone(wire, caller)
    phone.answer(call_id, wire.now, sdp=ANSWER)
    wire.flush()
    phone.hangup(call_id, wire.now)
    wire.flush()
    assert events_of(wire, CALLER, CallEnded)[0].reason == EndReason.REMOTE_HANGUP
    assert wire.summary(CALLER)[-1] == "200 BYE"


def test_reinvite_hold_is_offered_to_the_owner_and_2xx_retransmitted_until_ack(wire, caller):
    invite = scripted_invite(wire, caller)
    respond(wire, caller, invite, 200, body=ANSWER)
    reinvite = Request("INVITE", invite.from_.uri, _in_dialog_headers(invite, "INVITE", 1))
    reinvite.headers.add("Content-Type", "application/sdp")
    reinvite.body = ANSWER.replace(b"m=audio", b"a=sendonly\r\nm=audio")
    wire.inject(caller, reinvite.serialize(), SCRIPTED)
    (offer,) = events_of(wire, CALLER, OfferReceived)
    assert offer.method == "INVITE" and b"sendonly" in offer.sdp
    caller.answer_offer(invite.call_id, wire.now, sdp=b"v=0\r\na=recvonly\r\n")
    wire.flush()
    wire.advance(1.6)  # 200 at 0, then 0.5, 1.5: no ACK yet
    oks = [parse_message(d) for d in wire.captured[SCRIPTED] if d.startswith(b"SIP/2.0 200")]
    assert len(oks) == 3 and b"recvonly" in oks[0].body
    ack2 = Request("ACK", invite.from_.uri, _in_dialog_headers(invite, "ACK", 1))
    wire.inject(caller, ack2.serialize(), SCRIPTED)
    wire.advance(10)
    oks = [d for d in wire.captured[SCRIPTED] if d.startswith(b"SIP/2.0 200")]
    assert len(oks) == 3
    assert events_of(wire, CALLER, AckReceived)


def _in_dialog_headers(invite: Request, method: str, seq: int):
    from sip_bridge.headers import Headers

    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKfar{method}{seq};rport")
    h.add("Max-Forwards", "70")
    h.add("From", "<sip:op@127.0.0.1:5090>;tag=far1")
    h.add("To", invite.headers.get("From"))
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{seq} {method}")
    h.add("Contact", "<sip:op@127.0.0.1:5090>")
    return h


def test_options_answered_and_requests_outside_dialogs_refused(wire, caller):
    counter = iter(range(100))

    def ask(method, extra=(), to_tag=None, uri="sip:gateway@127.0.0.1:5070"):
        from sip_bridge.headers import Headers

        h = Headers()
        n = next(counter)
        h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK{method}{n}")
        h.add("Max-Forwards", "70")
        h.add("From", "<sip:x@127.0.0.1>;tag=1")
        h.add("To", "<sip:gateway@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""))
        h.add("Call-ID", f"c-{method}-{n}")
        h.add("CSeq", f"1 {method}")
        for name, value in extra:
            h.add(name, value)
        from sip_bridge.uri import parse_uri

        wire.inject(caller, Request(method, parse_uri(uri), h).serialize(), SCRIPTED)
        return parse_message(wire.captured[SCRIPTED][-1]).status

    assert ask("OPTIONS") == 200
    assert ask("INVITE") == 403  # not an open relay
    assert ask("BYE", to_tag="nope") == 481
    assert ask("SUBSCRIBE") == 405
    assert ask("REFER") == 481  # a transfer only ever comes inside one of our calls
    assert ask("FOOBAR") == 501
    assert ask("OPTIONS", uri="tel:+15551234") == 416
    assert ask("OPTIONS", extra=[("Require", "foo")]) == 420
    assert caller.active_calls == 0


def test_malformed_request_gets_400_saying_why_and_garbage_is_dropped(wire, caller):
    bad = (
        b"INVITE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKb\r\n"
        b"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: q\r\n"
        b"CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    )
    wire.inject(caller, bad, SCRIPTED)
    reply = parse_message(wire.captured[SCRIPTED][-1])
    assert reply.status == 400 and "CSeq method" in reply.reason
    before = len(wire.captured[SCRIPTED])
    wire.inject(caller, b"\x00\xffgarbage\r\n\r\n", SCRIPTED)
    assert len(wire.captured[SCRIPTED]) == before
    assert caller.counters["parse_errors"] == 2


def test_response_with_rport_gets_received_and_rport(wire, caller):
    wire.inject(
        caller,
        (
            b"OPTIONS sip:gateway@127.0.0.1:5070 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKnat;rport\r\n"
            b"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:gateway@127.0.0.1>\r\nCall-ID: nat\r\n"
            b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ),
        SCRIPTED,
    )
    reply = parse_message(wire.captured[SCRIPTED][-1])
    via = reply.top_via
    assert (via.param("received"), via.param("rport")) == ("127.0.0.1", "5090")


def test_many_concurrent_calls(wire, caller, phone):
    ids = [caller.invite("sip:operator@127.0.0.1:5080", wire.now, sdp=OFFER) for _ in range(200)]
    wire.flush()
    for call_id in ids:
        phone.answer(call_id, wire.now, sdp=ANSWER)
    wire.flush()
    assert len(events_of(wire, CALLER, CallAnswered)) == 200
    for call_id in ids:
        caller.hangup(call_id, wire.now)
    wire.flush()
    assert len(events_of(wire, PHONE, CallEnded)) == 200
    wire.advance(40)
    assert caller.transaction_count == phone.transaction_count == 0


def test_early_media_reported_once(wire, caller):
    invite = scripted_invite(wire, caller)
    respond(wire, caller, invite, 183, body=ANSWER)
    respond(wire, caller, invite, 183, body=ANSWER)
    assert [e.sdp for e in events_of(wire, CALLER, EarlyMedia)] == [ANSWER]


def test_incoming_call_cancelled_by_caller(wire, caller, phone):
    call_id = call_phone(wire, caller)
    phone.ring(call_id, wire.now)
    wire.flush()
    caller.hangup(call_id, wire.now)
    wire.flush()
    assert events_of(wire, PHONE, CallEnded)[0].reason == EndReason.REMOTE_HANGUP
    assert events_of(wire, CALLER, CallEnded)[0].reason == EndReason.CANCELLED
    assert "487 INVITE" in wire.summary(PHONE)


def test_rejected_incoming_call_retransmits_final_until_ack(wire, caller, phone):
    call_id = call_phone(wire, caller)
    wire.drop = lambda src, dst, data: src == CALLER and data.startswith(b"ACK")
    phone.hangup(call_id, wire.now, status=486)
    wire.flush()
    wire.advance(3)
    finals = [s for s in wire.summary(PHONE) if s == "486 INVITE"]
    assert len(finals) == 3  # timer G: 0, 0.5, 1.5
    wire.drop = lambda src, dst, data: False
    wire.advance(40)
    assert phone.transaction_count == caller.transaction_count == 0


def test_reliable_transport_does_not_retransmit(wire):
    tcp = wire.add(UserAgent(UserAgentConfig(address=CALLER, transport="tcp")))
    tcp.invite("sip:x@127.0.0.1:5090;transport=tcp", wire.now, sdp=OFFER)
    wire.flush()
    wire.advance(31)
    assert len(wire.captured[SCRIPTED]) == 1
    assert b"SIP/2.0/TCP" in wire.captured[SCRIPTED][0]
    wire.advance(2)
    assert events_of(wire, CALLER, CallEnded)[0].reason == EndReason.UNREACHABLE


def test_app_headers_cannot_inject(wire, caller):
    with pytest.raises(ValueError):
        caller.invite("sip:x@127.0.0.1:5090", wire.now, sdp=OFFER, headers=[("Via", "x")])
    caller.invite(
        "sip:x@127.0.0.1:5090",
        wire.now,
        sdp=OFFER,
        headers=[("X-Visitor-Name", "Eve\r\nVia: evil")],
        display_name='Eve "the" \\ \r\nBob',
    )
    wire.flush()
    invite = parse_message(wire.captured[SCRIPTED][-1])
    assert invite.headers.get("X-Visitor-Name") == "EveVia: evil"
    assert len(invite.vias) == 1
    assert invite.from_.display_name == 'Eve "the" \\ Bob'


def test_response_for_unknown_transaction_is_dropped(wire, caller):
    bogus = Response(200, "OK")
    bogus.headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKnope")
    for name, value in (
        ("From", "<sip:a@b>;tag=1"),
        ("To", "<sip:c@d>;tag=2"),
        ("Call-ID", "none"),
        ("CSeq", "1 INVITE"),
    ):
        bogus.headers.add(name, value)
    wire.inject(caller, bogus.serialize(), SCRIPTED)
    assert caller.counters["stray_responses"] == 1
    assert SCRIPTED not in wire.captured


def challenge(wire, caller, request, status=401, *, nonce="n1", stale=False):
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    value = f'Digest realm="pbx", nonce="{nonce}", qop="auth", opaque="op", algorithm=MD5'
    if stale:
        value += ", stale=true"
    respond(wire, caller, request, status, headers=[(header, value)])


def last_invite(wire) -> Request:
    return [
        m
        for m in map(parse_message, wire.captured[SCRIPTED])
        if isinstance(m, Request) and m.method == "INVITE"
    ][-1]


@pytest.mark.parametrize("status", [401, 407])
def test_challenge_is_answered_with_credentials(wire, caller, status):
    from sip_bridge.digest import verify_authorization

    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER, credentials=("alice", "s3cret"))
    wire.flush()
    first = last_invite(wire)
    challenge(wire, caller, first, status)
    retry = last_invite(wire)
    assert captured_methods(wire) == ["INVITE", "ACK", "INVITE"]
    assert retry.call_id == first.call_id and retry.from_.tag == first.from_.tag
    assert retry.cseq.seq == first.cseq.seq + 1
    assert retry.top_via.branch != first.top_via.branch
    header = "Authorization" if status == 401 else "Proxy-Authorization"
    assert verify_authorization(retry.headers.get(header), password="s3cret", method="INVITE")
    respond(wire, caller, retry, 200, body=ANSWER)
    assert events_of(wire, CALLER, CallAnswered)


def test_refused_credentials_end_the_call_after_one_retry(wire, caller):
    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER, credentials=("alice", "bad"))
    wire.flush()
    challenge(wire, caller, last_invite(wire))
    challenge(wire, caller, last_invite(wire), nonce="n2")
    assert captured_methods(wire) == ["INVITE", "ACK", "INVITE", "ACK"]
    (ended,) = events_of(wire, CALLER, CallEnded)
    assert (ended.reason, ended.status) == (EndReason.AUTH_FAILED, 401)
    assert "refused" in ended.detail


def test_stale_nonce_is_retried_once_more(wire, caller):
    caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER, credentials=("alice", "pw"))
    wire.flush()
    challenge(wire, caller, last_invite(wire))
    challenge(wire, caller, last_invite(wire), nonce="n2", stale=True)
    assert captured_methods(wire).count("INVITE") == 3
    challenge(wire, caller, last_invite(wire), nonce="n3", stale=True)
    assert captured_methods(wire).count("INVITE") == 3
    assert events_of(wire, CALLER, CallEnded)[0].reason == EndReason.AUTH_FAILED


def test_challenge_without_credentials_fails_clearly(wire, caller):
    invite = scripted_invite(wire, caller)
    challenge(wire, caller, invite, 407)
    (ended,) = events_of(wire, CALLER, CallEnded)
    assert ended.reason == EndReason.AUTH_FAILED and "no credentials" in ended.detail


def test_update_from_the_far_end_is_offered_and_answered(wire, caller):
    invite = scripted_invite(wire, caller)
    respond(wire, caller, invite, 200, body=ANSWER)
    update = Request("UPDATE", invite.from_.uri, _in_dialog_headers(invite, "UPDATE", 1))
    update.headers.add("Content-Type", "application/sdp")
    update.body = ANSWER.replace(b"m=audio", b"a=inactive\r\nm=audio")
    wire.inject(caller, update.serialize(), SCRIPTED)
    (offer,) = events_of(wire, CALLER, OfferReceived)
    assert offer.method == "UPDATE" and b"inactive" in offer.sdp
    caller.answer_offer(invite.call_id, wire.now, sdp=b"v=0\r\na=inactive\r\n")
    wire.flush()
    reply = parse_message(wire.captured[SCRIPTED][-1])
    assert (reply.status, reply.cseq.method) == (200, "UPDATE") and b"inactive" in reply.body
    wire.advance(5)  # an UPDATE's 2xx is not retransmitted: a non-INVITE transaction
    assert sum(d.startswith(b"SIP/2.0 200") for d in wire.captured[SCRIPTED]) == 1


def test_live_calls_say_what_another_process_needs_to_end_them(wire, caller, phone):
    ringing = call_phone(wire, caller)
    phone.ring(ringing, wire.now)
    wire.flush()
    (invite,) = caller.live_calls()
    assert isinstance(invite, RingingInvite) and invite.destination == PHONE
    assert parse_message(invite.invite).method == "INVITE"
    phone.answer(ringing, wire.now, sdp=ANSWER)
    wire.flush()
    (dialog,) = caller.live_calls()
    assert isinstance(dialog, ConfirmedDialog)
    assert dialog.call_id == ringing and dialog.destination == PHONE
    assert dialog.remote_target == "sip:operator@127.0.0.1:5080"
    assert dialog.local_tag and dialog.remote_tag and dialog.local_seq == 1
    caller.hangup(ringing, wire.now)
    assert caller.live_calls() == []  # a BYE is on its way: nothing left to end


def test_an_invite_that_cannot_be_encoded_is_refused_before_the_call_exists(wire, caller):
    with pytest.raises(ValueError, match="cannot be encoded"):
        caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER, display_name="Ann\ud800")
    assert caller.active_calls == 0 and caller.live_calls() == []


# ------------------------------------------------------------ OPTIONS outside dialogs
def options_results(wire: Wire, address) -> list[OptionsResult]:
    return events_of(wire, address, OptionsResult)


def test_options_to_a_phone_reports_its_answer(wire, caller, phone):
    caller.options("probe-1", "sip:operator@127.0.0.1:5080", wire.now, timeout=5)
    wire.flush()
    assert options_results(wire, CALLER) == [OptionsResult("probe-1", 200, "OK")]
    (request,) = [m for m in wire.messages_from(CALLER) if isinstance(m, Request)]
    assert request.method == "OPTIONS" and request.to.tag is None
    assert request.cseq.method == "OPTIONS"
    assert wire.summary(PHONE) == ["200 OPTIONS"]
    assert caller.get_timer() is not None  # timer K absorbs retransmitted answers
    wire.advance(10)
    assert caller.transaction_count == 0 and caller.get_timer() is None


def test_options_any_final_status_is_reported(wire, caller):
    caller.options("p", "sip:operator@127.0.0.1:5090", wire.now, timeout=5)
    wire.flush()
    (sent,) = wire.captured[SCRIPTED]
    request = parse_message(sent)
    provisional = new_response(request, 100).serialize()
    wire.inject(caller, provisional, SCRIPTED)
    assert options_results(wire, CALLER) == []
    wire.inject(caller, new_response(request, 404, to_tag="x").serialize(), SCRIPTED)
    assert options_results(wire, CALLER) == [OptionsResult("p", 404, "Not Found")]


def test_options_answer_from_elsewhere_is_ignored(wire, caller):
    caller.options("p", "sip:operator@127.0.0.1:5090", wire.now, timeout=5)
    wire.flush()
    request = parse_message(wire.captured[SCRIPTED][0])
    wire.inject(caller, new_response(request, 200, to_tag="x").serialize(), ("127.0.0.1", 6666))
    assert options_results(wire, CALLER) == []
    assert caller.counters["spoofed_responses"] == 1


def test_options_nobody_there_gives_up_at_the_deadline(wire, caller):
    caller.options("p", "sip:operator@127.0.0.1:5090", wire.now, timeout=3)
    wire.flush()
    wire.advance(2.9)
    assert options_results(wire, CALLER) == []
    sent_before = len(wire.captured[SCRIPTED])
    assert sent_before > 1  # retransmitted over UDP (timer E)
    wire.advance(0.2)
    assert options_results(wire, CALLER) == [OptionsResult("p", None, "no response in time")]
    wire.advance(60)
    assert len(wire.captured[SCRIPTED]) == sent_before  # abandoned: no more retransmissions
    assert caller.transaction_count == 0 and caller.get_timer() is None


def test_options_without_a_deadline_ends_at_timer_f(wire, caller):
    caller.options("p", "sip:operator@127.0.0.1:5090", wire.now)
    wire.flush()
    wire.advance(31.9)
    assert options_results(wire, CALLER) == []
    wire.advance(0.2)
    assert options_results(wire, CALLER) == [OptionsResult("p", None, "no response")]


def test_options_transport_error_is_reported_at_once(wire, caller):
    caller.options("p", "sip:operator@127.0.0.1:5090", wire.now, timeout=5)
    wire.flush()
    caller.transport_error(SCRIPTED, wire.now)
    assert caller.next_event() == OptionsResult("p", None, "no response")
    assert caller.transaction_count == 0


def test_options_key_in_use_and_bad_target_are_refused(wire, caller):
    caller.options("p", "sip:operator@127.0.0.1:5090", wire.now, timeout=5)
    with pytest.raises(CallError):
        caller.options("p", "sip:operator@127.0.0.1:5090", wire.now, timeout=5)
    with pytest.raises(ValueError):
        caller.options("q", "tel:+15550100", wire.now)
    wire.advance(6)
    caller.options("p", "sip:operator@127.0.0.1:5090", wire.now, timeout=5)  # free again


def test_options_go_through_the_outbound_proxy(wire):
    ua = wire.add(UserAgent(UserAgentConfig(address=CALLER, outbound_proxy="sip:127.0.0.1:5090")))
    ua.options("p", "sip:operator@pbx.example", wire.now, timeout=5)
    wire.flush()
    request = parse_message(wire.captured[SCRIPTED][0])
    assert str(request.uri) == "sip:operator@pbx.example"
    assert request.headers.get("Route") == "<sip:127.0.0.1:5090;lr>"
