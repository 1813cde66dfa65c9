"""Page-mode instant messages (RFC 3428 MESSAGE outside dialogs) between sans-I/O user
agents and scripted peers, on a fake clock: sent with the exact UTF-8 text, taken and
answered by the owner, a reply that finds its way back, refusals of what is not plain
text, digest challenges, and the owner's deadline."""

from __future__ import annotations

import pytest

from sip_bridge.events import MessageReceived, MessageResult
from sip_bridge.message import Request, new_response, parse_message
from sip_bridge.pager import MAX_UDP_BODY_BYTES
from sip_bridge.uri import parse_name_address
from sip_bridge.useragent import MESSAGE_REPLY_WITHIN, CallError, UserAgent, UserAgentConfig

from .loop import Wire

GATEWAY = ("127.0.0.1", 5070)
PHONE = ("127.0.0.1", 5080)
SCRIPTED = ("127.0.0.1", 5090)
TEXT = "Order 42 👋 please — שלום עולם, مرحبا\nsecond line"


def events_of(wire: Wire, address, kind):
    return [e for e in wire.events[address] if isinstance(e, kind)]


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def gateway(wire: Wire) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=GATEWAY, accept_messages=True)))


@pytest.fixture
def phone(wire: Wire) -> UserAgent:
    return wire.add(
        UserAgent(UserAgentConfig(address=PHONE, user="operator", accept_messages=True))
    )


def take_all(wire: Wire, ua: UserAgent, address, status: int = 200) -> list[MessageReceived]:
    received = events_of(wire, address, MessageReceived)
    for message in received:
        ua.reply_message(message.key, status, wire.now)
    wire.flush()
    return received


def test_a_message_reaches_the_phone_with_its_exact_text_and_the_reply_comes_back(
    wire, gateway, phone
):
    gateway.message(
        "m1",
        "sip:operator@127.0.0.1:5080",
        wire.now,
        text=TEXT,
        from_user="chat-abc",
        display_name="Ana",
        headers=[("X-Site", "shop")],
        timeout=5,
    )
    wire.flush()
    (request,) = [m for m in wire.messages_from(GATEWAY) if isinstance(m, Request)]
    assert request.method == "MESSAGE" and request.cseq.method == "MESSAGE"
    assert request.headers.get("Content-Type") == "text/plain; charset=UTF-8"
    assert "Contact" not in request.headers  # no dialog, nothing to contact
    assert request.headers.get("X-Site") == "shop"
    assert str(request.from_.uri) == "sip:chat-abc@127.0.0.1:5070"  # our port: replies find us
    assert request.from_.display_name == "Ana"
    (received,) = events_of(wire, PHONE, MessageReceived)
    assert received.text == TEXT and received.source == GATEWAY
    assert received.request_uri == "sip:operator@127.0.0.1:5080"
    assert events_of(wire, GATEWAY, MessageResult) == []  # until the owner answers
    phone.reply_message(received.key, 200, wire.now)
    wire.flush()
    assert events_of(wire, GATEWAY, MessageResult) == [MessageResult("m1", 200, "OK")]
    ok = [m for m in wire.messages_from(PHONE) if not isinstance(m, Request)]
    assert ok[0].to.tag  # a final answer carries the recipient's tag

    # The phone answers to where the message came from (its From).
    sender = parse_name_address(received.sender)
    phone.message("r1", str(sender.uri), wire.now, text="On my way ✔", timeout=5)
    wire.flush()
    (reply,) = events_of(wire, GATEWAY, MessageReceived)
    assert reply.request_uri == "sip:chat-abc@127.0.0.1:5070" and reply.text == "On my way ✔"
    assert gateway.sent_from("sip:operator@127.0.0.1:5080", reply.source)
    assert not gateway.sent_from("sip:operator@127.0.0.2:5080", reply.source)
    take_all(wire, gateway, GATEWAY)
    assert events_of(wire, PHONE, MessageResult) == [MessageResult("r1", 200, "OK")]


def test_an_unanswered_message_is_answered_500_at_the_owners_deadline(wire, gateway, phone):
    phone.message("m", "sip:chat-x@127.0.0.1:5070", wire.now, text="hello", timeout=5)
    wire.flush()
    assert len(events_of(wire, GATEWAY, MessageReceived)) == 1
    wire.advance(MESSAGE_REPLY_WITHIN + 0.01)
    assert events_of(wire, PHONE, MessageResult) == [
        MessageResult("m", 500, "Not answered in time")
    ]
    assert gateway.get_timer() is not None  # timer J keeps the answer for retransmissions


def scripted_message(content_type: str, body: bytes) -> bytes:
    head = (
        "MESSAGE sip:chat-x@127.0.0.1:5070 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKpager1\r\n"
        "From: <sip:op@127.0.0.1:5090>;tag=a\r\nTo: <sip:chat-x@127.0.0.1:5070>\r\n"
        "Call-ID: pager-1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/html", b"<b>hi</b>", 415),
        ("text/plain; charset=ISO-8859-1", b"caf\xe9", 415),
        ("text/plain; charset=utf-8", b"caf\xe9", 400),
        ("text/plain", b"x" * 5000, 413),
    ],
)
def test_what_is_not_plain_utf8_text_is_refused_without_the_owner(
    wire, gateway, content_type, body, status
):
    wire.inject(gateway, scripted_message(content_type, body), SCRIPTED)
    (answer,) = [parse_message(d) for d in wire.captured[SCRIPTED]]
    assert answer.status == status and answer.to.tag
    if status == 415:
        assert answer.headers.get("Accept") == "text/plain"
    assert events_of(wire, GATEWAY, MessageReceived) == []


def test_without_accept_messages_a_message_is_not_allowed(wire):
    ua = wire.add(UserAgent(UserAgentConfig(address=GATEWAY)))
    wire.inject(ua, scripted_message("text/plain", b"hi"), SCRIPTED)
    (answer,) = [parse_message(d) for d in wire.captured[SCRIPTED]]
    assert answer.status == 405


def test_a_challenged_message_is_sent_again_with_credentials_once(wire, gateway):
    gateway.message(
        "m",
        "sip:op@127.0.0.1:5090",
        wire.now,
        text="hi",
        credentials=("alice", "secret"),
        timeout=5,
    )
    wire.flush()
    first = parse_message(wire.captured[SCRIPTED][0])
    challenge = new_response(first, 401, to_tag="t")
    challenge.headers.add("WWW-Authenticate", 'Digest realm="pbx", nonce="n1", qop="auth"')
    wire.inject(gateway, challenge.serialize(), SCRIPTED)
    second = parse_message(wire.captured[SCRIPTED][-1])
    assert second.method == "MESSAGE" and second.cseq.seq == 2
    assert second.headers.get("Authorization").startswith('Digest username="alice"')
    assert events_of(wire, GATEWAY, MessageResult) == []
    again = new_response(second, 401, to_tag="t")
    again.headers.add("WWW-Authenticate", 'Digest realm="pbx", nonce="n2", qop="auth"')
    wire.inject(gateway, again.serialize(), SCRIPTED)
    assert events_of(wire, GATEWAY, MessageResult) == [MessageResult("m", 401, "Unauthorized")]


def test_texts_and_targets_that_cannot_be_sent_are_refused(wire, gateway):
    with pytest.raises(ValueError, match="longer than"):
        gateway.message("m", "sip:op@127.0.0.1:5090", wire.now, text="x" * (MAX_UDP_BODY_BYTES + 1))
    with pytest.raises(ValueError, match="not valid Unicode"):
        gateway.message("m", "sip:op@127.0.0.1:5090", wire.now, text="a\ud800")
    with pytest.raises(ValueError):
        gateway.message("m", "tel:+15550100", wire.now, text="hi")
    with pytest.raises(ValueError):
        gateway.message("m", "sip:op@127.0.0.1:5090", wire.now, text="hi", headers=[("Via", "x")])
    gateway.message("m", "sip:op@127.0.0.1:5090", wire.now, text="hi", timeout=1)
    with pytest.raises(CallError):
        gateway.message("m", "sip:op@127.0.0.1:5090", wire.now, text="hi")
    wire.advance(1.1)
    assert events_of(wire, GATEWAY, MessageResult) == [
        MessageResult("m", None, "no response in time")
    ]
