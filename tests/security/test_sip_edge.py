"""The SIP edge of the sans-I/O user agent, on a fake clock and an in-memory network.

Who may change a call: responses only from where the request went; requests inside a
dialog only from the dialog's peer and with its tags; CANCEL only from the INVITE's sender.
Who may talk at all: an optional allowlist, and a token bucket per source IP. And what our
replies give away: nothing beyond the parse reason (no banner, no other address).
"""

from __future__ import annotations

import ipaddress
import re

import pytest

from sip_bridge.events import (
    AckReceived,
    CallAnswered,
    CallEnded,
    CallRinging,
    EndReason,
    IncomingCall,
    InfoReceived,
    OfferReceived,
)
from sip_bridge.headers import Headers
from sip_bridge.message import Request, Response, new_response, parse_message
from sip_bridge.rate_limit import RateLimit
from sip_bridge.uri import parse_uri
from sip_bridge.useragent import UserAgent, UserAgentConfig
from tests.sip_bridge.loop import Wire

GATEWAY = ("127.0.0.1", 5070)
PBX = ("127.0.0.1", 5090)  # the far end the gateway calls (scripted)
PROXY = ("127.0.0.1", 5095)
ATTACKER = ("127.0.0.1", 5099)  # same host, another port
ELSEWHERE = ("127.0.0.2", 5090)  # another host, the PBX's port
OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 20000 RTP/AVP 0\r\n"
)
ANSWER = OFFER.replace(b"20000", b"30000")
EVIL_SDP = OFFER.replace(b"127.0.0.1", b"127.0.0.66")


def events(wire: Wire, address, kind) -> list:
    return [e for e in wire.events[address] if isinstance(e, kind)]


def sent_to(wire: Wire, address) -> list[Request | Response]:
    return [parse_message(d) for d in wire.captured.get(address, [])]


@pytest.fixture
def wire() -> Wire:
    return Wire()


def gateway_ua(wire: Wire, **config) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=GATEWAY, **config)))


class ScriptedPeer:
    """The far end of one call, written by hand so that it can also lie."""

    def __init__(self, wire: Wire, ua: UserAgent, invite: Request, tag: str = "pbx1") -> None:
        self.wire, self.ua, self.invite, self.tag = wire, ua, invite, tag
        self.seq = 0

    def respond(self, status: int, *, source=PBX, body=b"", headers=()) -> Response:
        response = new_response(self.invite, status, to_tag=self.tag if status > 100 else None)
        response.headers.add("Contact", f"<sip:op@{PBX[0]}:{PBX[1]}>")
        for name, value in headers:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self.wire.inject(self.ua, response.serialize(), source)
        return response

    def request(
        self,
        method: str,
        *,
        source=PBX,
        seq: int | None = None,
        from_tag: str | None = None,
        to_tag: str | None = None,
        body: bytes = b"",
        via_port: int | None = None,
    ) -> Request:
        """An in-dialog request from the PBX's side (or forged from `source`)."""
        self.seq += 1
        h = Headers()
        port = via_port or source[1]
        h.add("Via", f"SIP/2.0/UDP {source[0]}:{port};branch=z9hG4bK{method}{self.seq};rport")
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:op@{PBX[0]}:{PBX[1]}>;tag={from_tag or self.tag}")
        to = self.invite.headers.get("From")
        if to_tag is not None:
            to = re.sub(r";tag=[^;]*", f";tag={to_tag}", to)
        h.add("To", to)
        h.add("Call-ID", self.invite.call_id)
        h.add("CSeq", f"{seq if seq is not None else self.seq} {method}")
        h.add("Contact", f"<sip:op@{PBX[0]}:{PBX[1]}>")
        if body:
            h.add("Content-Type", "application/sdp")
        request = Request(method, self.invite.from_.uri, h, body)
        self.wire.inject(self.ua, request.serialize(), source)
        return request


def answered_call(wire: Wire, ua: UserAgent, target=f"sip:op@{PBX[0]}:{PBX[1]}") -> ScriptedPeer:
    ua.invite(target, wire.now, sdp=OFFER)
    wire.flush()
    invite = [m for m in sent_to(wire, PBX) if isinstance(m, Request)][-1]
    peer = ScriptedPeer(wire, ua, invite)
    peer.respond(180)
    peer.respond(200, body=ANSWER)
    assert events(wire, GATEWAY, CallAnswered)
    return peer


# ------------------------------------------------------------------ responses
def test_responses_from_anywhere_but_the_destination_are_dropped_and_counted(wire):
    ua = gateway_ua(wire)
    ua.invite(f"sip:op@{PBX[0]}:{PBX[1]}", wire.now, sdp=OFFER)
    wire.flush()
    peer = ScriptedPeer(wire, ua, sent_to(wire, PBX)[0])
    for source in (ATTACKER, ELSEWHERE):
        peer.respond(180, source=source)
        peer.respond(200, source=source, body=EVIL_SDP)
    assert not events(wire, GATEWAY, CallRinging) and not events(wire, GATEWAY, CallAnswered)
    assert ua.counters["spoofed_responses"] == 4
    assert ATTACKER not in wire.captured and ELSEWHERE not in wire.captured  # no ACK
    assert [type(m).__name__ for m in sent_to(wire, PBX)] == ["Request"]  # only the INVITE
    peer.respond(200, body=ANSWER)
    (answered,) = events(wire, GATEWAY, CallAnswered)
    assert answered.sdp == ANSWER
    assert [m.method for m in sent_to(wire, PBX)] == ["INVITE", "ACK"]


def test_with_an_outbound_proxy_responses_come_from_the_proxy(wire):
    ua = gateway_ua(wire, outbound_proxy=f"sip:{PROXY[0]}:{PROXY[1]};lr")
    ua.invite(f"sip:op@{PBX[0]}:{PBX[1]}", wire.now, sdp=OFFER)
    wire.flush()
    (invite,) = sent_to(wire, PROXY)
    peer = ScriptedPeer(wire, ua, invite)
    peer.respond(200, source=PBX, body=ANSWER)  # the far end itself, around the proxy
    assert not events(wire, GATEWAY, CallAnswered)
    assert ua.counters["spoofed_responses"] == 1
    peer.respond(200, source=PROXY, body=ANSWER)
    assert events(wire, GATEWAY, CallAnswered)


def test_host_names_are_matched_through_the_resolutions_the_io_layer_reports(wire):
    ua = gateway_ua(wire)
    ua.invite("sip:op@pbx.example.test:5090", wire.now, sdp=OFFER)
    wire.flush()
    (invite,) = sent_to(wire, ("pbx.example.test", 5090))
    peer = ScriptedPeer(wire, ua, invite)
    peer.respond(200, body=ANSWER)  # from 127.0.0.1:5090, but nobody said that is the PBX
    assert not events(wire, GATEWAY, CallAnswered)
    ua.address_resolved("PBX.example.test", "127.0.0.2")
    peer.respond(200, body=ANSWER)
    assert not events(wire, GATEWAY, CallAnswered)
    ua.address_resolved("pbx.example.test", "127.0.0.1")
    peer.respond(200, body=ANSWER)
    assert events(wire, GATEWAY, CallAnswered)
    assert ua.counters["spoofed_responses"] == 2


def test_a_late_2xx_copy_from_another_address_gets_no_ack(wire):
    ua = gateway_ua(wire)
    peer = answered_call(wire, ua)
    wire.advance(40)  # the INVITE transaction is gone; copies are matched to the dialog
    acks = len(wire.captured[PBX])
    peer.respond(200, source=ATTACKER, body=ANSWER)
    assert ATTACKER not in wire.captured and len(wire.captured[PBX]) == acks
    assert ua.counters["spoofed_responses"] == 1
    peer.respond(200, body=ANSWER)
    assert len(wire.captured[PBX]) == acks + 1  # the genuine copy is ACKed again


# ------------------------------------------------------------------ in-dialog requests
@pytest.mark.parametrize("source", [ATTACKER, ELSEWHERE])
def test_forged_requests_from_another_address_do_not_end_or_alter_the_call(wire, source):
    ua = gateway_ua(wire)
    peer = answered_call(wire, ua)
    before = len(wire.captured[PBX])
    peer.request("BYE", source=source, seq=1000)
    peer.request("INVITE", source=source, seq=1001, body=EVIL_SDP)
    peer.request("UPDATE", source=source, seq=1002, body=EVIL_SDP)
    peer.request("INFO", source=source, seq=1003)
    peer.request("OPTIONS", source=source, seq=1004)
    # Nothing answered (no reflection), nothing reported, no transaction left behind.
    assert source not in wire.captured and len(wire.captured[PBX]) == before
    assert not events(wire, GATEWAY, CallEnded)
    assert not events(wire, GATEWAY, OfferReceived) and not events(wire, GATEWAY, InfoReceived)
    assert ua.counters["spoofed_requests"] == 5
    assert ua.transaction_count == 1  # the INVITE client transaction (timer M)
    # The genuine peer, with a CSeq far below the forged ones: no trace of them remains.
    peer.request("BYE", seq=2)
    assert parse_message(wire.captured[PBX][-1]).status == 200
    (ended,) = events(wire, GATEWAY, CallEnded)
    assert ended.reason == EndReason.REMOTE_HANGUP


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
@pytest.mark.parametrize("who_ends", ["we hang up", "they hang up"])
def test_an_offer_left_unanswered_when_the_call_ends_gets_487(wire, method, who_ends):
    # Found by fuzzing: the offer's server transaction stayed forever (a leak per call).
    ua = gateway_ua(wire)
    peer = answered_call(wire, ua)
    peer.request(method, body=ANSWER)
    assert events(wire, GATEWAY, OfferReceived)
    if who_ends == "we hang up":
        ua.hangup(peer.invite.call_id, wire.now)
        wire.flush()
        bye = sent_to(wire, PBX)[-1]
        wire.inject(ua, new_response(bye, 200).serialize(), PBX)
    else:
        peer.request("BYE")
    finals = [m for m in sent_to(wire, PBX) if isinstance(m, Response) and m.status == 487]
    assert [m.cseq.method for m in finals] == [method]
    assert events(wire, GATEWAY, CallEnded)
    wire.advance(40)
    assert ua.transaction_count == 0


def test_wrong_tags_from_the_right_address_get_481_and_change_nothing(wire):
    ua = gateway_ua(wire)
    peer = answered_call(wire, ua)
    peer.request("BYE", from_tag="guess")
    assert parse_message(wire.captured[PBX][-1]).status == 481
    peer.request("INVITE", to_tag="guess", body=EVIL_SDP)
    assert parse_message(wire.captured[PBX][-1]).status == 481
    assert not events(wire, GATEWAY, CallEnded) and not events(wire, GATEWAY, OfferReceived)
    peer.request("INVITE", body=ANSWER)  # a genuine re-INVITE is still offered
    assert events(wire, GATEWAY, OfferReceived)


def test_record_routed_dialog_takes_requests_from_the_proxy_and_the_target(wire):
    ua = gateway_ua(wire)
    ua.invite(f"sip:op@{PBX[0]}:{PBX[1]}", wire.now, sdp=OFFER)
    wire.flush()
    peer = ScriptedPeer(wire, ua, sent_to(wire, PBX)[0])
    response = new_response(peer.invite, 200, to_tag=peer.tag)
    response.headers.add("Record-Route", f"<sip:{PROXY[0]}:{PROXY[1]};lr>")
    response.headers.add("Contact", "<sip:op@127.0.0.1:5096>")
    response.headers.add("Content-Type", "application/sdp")
    response.body = ANSWER
    wire.inject(ua, response.serialize(), PBX)
    peer.request("INFO", source=PROXY)
    peer.request("INFO", source=("127.0.0.1", 5096))
    peer.request("INFO", source=ATTACKER)
    assert len(events(wire, GATEWAY, InfoReceived)) == 2
    assert ua.counters["spoofed_requests"] == 1


def test_over_tcp_the_dialog_peer_is_its_host_whatever_the_port(wire):
    ua = gateway_ua(wire, transport="tcp")
    peer = answered_call(wire, ua, target=f"sip:op@{PBX[0]}:{PBX[1]};transport=tcp")
    peer.request("INFO", source=("127.0.0.1", 40123))  # a new connection, ephemeral port
    peer.request("INFO", source=("127.0.0.2", 5090))
    assert len(events(wire, GATEWAY, InfoReceived)) == 1
    assert ua.counters["spoofed_requests"] == 1


# ------------------------------------------------------------------ as the called party
CALLER = ("127.0.0.1", 5060)


def incoming_call(wire: Wire) -> tuple[UserAgent, Request]:
    phone = gateway_ua(wire, accept_incoming=True)
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP {CALLER[0]}:{CALLER[1]};branch=z9hG4bKinv1;rport")
    h.add("Max-Forwards", "70")
    h.add("From", "<sip:visitor@127.0.0.1>;tag=c1")
    h.add("To", "<sip:gateway@127.0.0.1:5070>")
    h.add("Call-ID", "incoming-1")
    h.add("CSeq", "1 INVITE")
    h.add("Contact", f"<sip:visitor@{CALLER[0]}:{CALLER[1]}>")
    h.add("Content-Type", "application/sdp")
    invite = Request("INVITE", parse_uri("sip:gateway@127.0.0.1:5070"), h, OFFER)
    wire.inject(phone, invite.serialize(), CALLER)
    assert events(wire, GATEWAY, IncomingCall)
    return phone, invite


def _same_transaction(invite: Request, method: str, *, to_tag: str | None = None) -> bytes:
    h = invite.headers.copy()
    h.remove("Content-Type")
    if to_tag:
        h.set("To", f"{invite.headers.get('To')};tag={to_tag}")
    h.set("CSeq", f"1 {method}")
    return Request(method, invite.uri, h, b"" if method == "CANCEL" else ANSWER).serialize()


def test_cancel_is_taken_only_from_the_sender_of_the_invite(wire):
    phone, invite = incoming_call(wire)
    wire.inject(phone, _same_transaction(invite, "CANCEL"), ATTACKER)
    assert not events(wire, GATEWAY, CallEnded) and ATTACKER not in wire.captured
    assert phone.counters["spoofed_requests"] == 1
    wire.inject(phone, _same_transaction(invite, "CANCEL"), CALLER)
    assert events(wire, GATEWAY, CallEnded)[0].reason == EndReason.REMOTE_HANGUP


def test_ack_with_sdp_is_taken_only_from_the_caller_with_its_tags(wire):
    phone, invite = incoming_call(wire)
    phone.answer(invite.call_id, wire.now, sdp=b"")
    wire.flush()
    ok = next(m for m in sent_to(wire, CALLER) if isinstance(m, Response) and m.status == 200)
    ack = _same_transaction(invite, "ACK", to_tag=ok.to.tag)
    wire.inject(phone, ack, ATTACKER)
    wire.inject(phone, _same_transaction(invite, "ACK", to_tag="guess"), CALLER)
    assert not events(wire, GATEWAY, AckReceived)
    assert phone.counters["spoofed_requests"] == 2
    wire.inject(phone, ack, CALLER)
    (acked,) = events(wire, GATEWAY, AckReceived)
    assert acked.sdp == ANSWER


def test_bye_for_an_incoming_call_only_from_the_caller(wire):
    phone, invite = incoming_call(wire)
    phone.answer(invite.call_id, wire.now, sdp=ANSWER)
    wire.flush()
    ok = next(m for m in sent_to(wire, CALLER) if isinstance(m, Response) and m.status == 200)
    bye = _same_transaction(invite, "BYE", to_tag=ok.to.tag).replace(
        b"branch=z9hG4bKinv1", b"branch=z9hG4bKbye1"
    )
    bye = bye.replace(b"CSeq: 1 BYE", b"CSeq: 2 BYE")
    wire.inject(phone, bye, ELSEWHERE)
    assert not events(wire, GATEWAY, CallEnded)
    wire.inject(phone, bye, CALLER)
    assert events(wire, GATEWAY, CallEnded)[0].reason == EndReason.REMOTE_HANGUP


# ------------------------------------------------------------------ allowlist
def options(source, n: int = 1, call_id: str = "o") -> bytes:
    return (
        f"OPTIONS sip:gateway@127.0.0.1:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source[0]}:{source[1]};branch=z9hG4bKo{n}{call_id};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:x@{source[0]}>;tag=f{n}\r\n"
        f"To: <sip:gateway@127.0.0.1>\r\nCall-ID: {call_id}-{n}\r\nCSeq: 1 OPTIONS\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def test_allowlist_drops_everything_from_other_addresses_silently(wire):
    ua = gateway_ua(wire, allowed_peers=("127.0.0.1/32", "2001:db8::/32"))
    outsider = ("127.0.0.9", 5060)
    wire.inject(ua, options(outsider), outsider)
    wire.inject(ua, b"garbage\r\n\r\n", outsider)
    assert outsider not in wire.captured and ua.counters["not_allowed"] == 2
    assert ua.counters["parse_errors"] == 0  # not even read
    wire.inject(ua, options(PBX), PBX)
    assert parse_message(wire.captured[PBX][-1]).status == 200
    # Responses too: an allowed destination answering from outside the list is not heard.
    ua.invite("sip:op@127.0.0.9:5060", wire.now, sdp=OFFER)
    wire.flush()
    peer = ScriptedPeer(wire, ua, sent_to(wire, outsider)[-1])
    peer.respond(200, source=outsider, body=ANSWER)
    assert not events(wire, GATEWAY, CallAnswered) and ua.counters["not_allowed"] == 3


def test_allowlist_entries_are_checked_and_accept_networks(wire):
    with pytest.raises(ValueError, match="not-an-address"):
        UserAgent(UserAgentConfig(address=GATEWAY, allowed_peers=("10.0.0.0/8", "not-an-address")))
    ua = UserAgent(
        UserAgentConfig(address=GATEWAY, allowed_peers=(ipaddress.ip_network("127.0.0.0/8"),))
    )
    ua.receive_datagram(options(("127.1.2.3", 5060)), ("127.1.2.3", 5060), 0.0)
    # An IPv4 peer seen through a dual-stack socket.
    ua.receive_datagram(options(("127.0.0.1", 5060), 2), ("::ffff:127.0.0.1", 5060), 0.0)
    assert len(ua.datagrams_to_send(0.0)) == 2 and ua.counters["not_allowed"] == 0


# ------------------------------------------------------------------ rate limit
def test_requests_over_the_rate_are_dropped_per_source_ip(wire):
    ua = gateway_ua(wire, request_rate=RateLimit(per_second=2, burst=5))
    flooder = "127.0.0.7"

    def answered_to(host: str) -> int:
        return sum(len(v) for k, v in wire.captured.items() if k[0] == host)

    for n in range(20):  # from many ports: the bucket is per IP
        wire.inject(ua, options((flooder, 5060 + n), n), (flooder, 5060 + n))
    assert answered_to(flooder) == 5
    assert ua.counters["rate_limited"] == 15 and ua.counters["parse_errors"] == 0
    wire.inject(ua, options(PBX, 99), PBX)  # another source has its own bucket
    assert answered_to(PBX[0]) == 1
    wire.advance(1.0)  # two more per second
    for n in range(20, 25):
        wire.inject(ua, options((flooder, 5060), n), (flooder, 5060))
    assert answered_to(flooder) == 7


def test_responses_are_not_charged_to_the_rate_limit(wire):
    ua = gateway_ua(wire, request_rate=RateLimit(per_second=1, burst=1))
    wire.inject(ua, options(PBX, 1), PBX)
    wire.inject(ua, options(PBX, 2), PBX)  # bucket empty now
    assert ua.counters["rate_limited"] == 1
    answered_call(wire, ua)  # 180 and 200 from the same IP still get through


# ------------------------------------------------------------------ what replies give away
PUBLIC = ("198.51.100.20", 5060)  # announced addresses; the sockets may be elsewhere
PHONE = ("198.51.100.21", 5060)
_IPV4 = re.compile(rb"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
LEAKY = (b"Traceback", b'File "', b"python", b"Python", b"sip_bridge", b"Error(", b"0x7f")


def _provoke_every_reply(wire: Wire, gateway: UserAgent, phone: UserAgent) -> list[bytes]:
    """Requests that make a UA answer each way it can, valid and malformed: the gateway
    (calls out only) refuses, the phone takes calls and rings, answers or rejects them."""
    peer = ("127.0.0.1", 5090)
    sent: list[bytes] = []

    def send(ua: UserAgent, data: bytes) -> None:
        sent.append(data)
        wire.inject(ua, data, peer)

    base = options(peer).decode()
    send(gateway, base.encode())
    for n, method in enumerate(("INVITE", "BYE", "SUBSCRIBE", "FOO")):
        send(
            gateway, base.replace("OPTIONS", method).replace("z9hG4bKo1o", f"z9hG4bKm{n}").encode()
        )
    variants = (
        ("sip:gateway@127.0.0.1:5070 SIP", "tel:+15551234 SIP"),  # 416
        ("Content-Length", "Require: 100rel\r\nContent-Length"),  # 420
        ("CSeq: 1 OPTIONS", "CSeq: 1 BYE"),  # 400, said why
        ("SIP/2.0\r\n", "SIP/3.0\r\n"),  # 505
        ("Max-Forwards: 70", "Max-Forwards: 7000"),  # 400
        ("To: <sip:gateway@127.0.0.1>", "To: <sip:gateway@127.0.0.1>;tag=zz"),  # 481
    )
    for n, (old, new) in enumerate(variants):
        send(gateway, base.replace(old, new, 1).replace("z9hG4bKo1o", f"z9hG4bKv{n}").encode())
    for n, action in enumerate(("ring", "early media", "answer", "reject")):
        invite = (
            base.replace("OPTIONS", "INVITE")
            .replace("z9hG4bKo1o", f"z9hG4bKi{n}")
            .replace("Call-ID: o-1", f"Call-ID: in-{n}")
            .replace(
                "Content-Length: 0",
                f"Content-Type: application/sdp\r\nContent-Length: {len(OFFER)}",
            )
            .encode()
            + OFFER
        )
        send(phone, invite)
        if action == "ring":
            phone.ring(f"in-{n}", wire.now)
        elif action == "early media":
            phone.ring(f"in-{n}", wire.now, sdp=ANSWER)
        elif action == "answer":
            phone.answer(f"in-{n}", wire.now, sdp=ANSWER)
        else:
            phone.hangup(f"in-{n}", wire.now, status=486)
        wire.flush()
    return sent


@pytest.mark.parametrize("user_agent", [None, "Acme Gateway"])
def test_replies_carry_no_banner_no_trace_and_no_other_address(wire, user_agent):
    gateway = wire.add(UserAgent(UserAgentConfig(address=PUBLIC, user_agent=user_agent)))
    phone = wire.add(
        UserAgent(UserAgentConfig(address=PHONE, accept_incoming=True, user_agent=user_agent))
    )
    requests = _provoke_every_reply(wire, gateway, phone)
    replies = wire.captured[("127.0.0.1", 5090)]
    statuses = {parse_message(r).status for r in replies}
    assert {100, 180, 183, 200, 400, 403, 405, 416, 420, 481, 486, 501, 505} <= statuses
    ours = {PUBLIC[0].encode(), PHONE[0].encode()}
    addresses_in_requests = {ip for r in requests for ip in _IPV4.findall(r)}
    for reply in replies:
        message = parse_message(reply)  # well-formed, every one
        for name in ("Server", "User-Agent"):
            assert message.headers.get(name) in (None, user_agent)
        assert not any(word in reply for word in LEAKY), reply
        # Addresses: ours as announced, and what the request itself carried; nothing else.
        for ip in _IPV4.findall(reply):
            assert ip in ours or ip in addresses_in_requests, (ip, reply)
        for warning in message.headers.get_all("Warning"):
            assert re.fullmatch(r'399 - "[ -~]{1,200}"', warning), warning
    if user_agent:
        assert any(b"Server: Acme Gateway" in r for r in replies)  # the check can see it


def test_a_via_maddr_cannot_aim_our_replies_at_another_host(wire):
    ua = gateway_ua(wire)
    data = options(PBX).replace(b";rport", b";maddr=192.0.2.99")
    wire.inject(ua, data, PBX)
    assert list(wire.captured) == [PBX]  # the source host, the Via's port
